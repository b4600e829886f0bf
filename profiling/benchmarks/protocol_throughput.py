"""Useful payload throughput of the protocol over a pty at 115200 baud and over a local socket.

Run: ``python -m ondevice.profiling.benchmarks.protocol_throughput [--kib 64]``. The last line is one JSON object
with ``pty_line_rate_fraction`` and ``socket_bytes_per_s``.

What is measured: a model upload (LOAD_MODEL_BEGIN, CHUNKs, END with the device's SHA-256 check) of random bytes,
"useful" = model bytes / wall time from BEGIN to END's reply. The agent is the sim agent with a RAW blob (stored
and hash-checked, not prepared), so only the link and the protocol are timed. The other direction: GET_OUTPUT of a
64 KiB output tensor (a weightless outer-product model made with litert-torch), streamed as MORE frames.
``pty_line_rate_fraction`` is the upload (host -> device), the transfer a user waits for.

How the pty emulates a UART: a pty has no baud rate, so the agent side is paced at the UART byte rate, 11520 B/s
for 115200 8N1 (10 bit times per byte), in both directions at once like a full-duplex UART (``sim_io.Paced``):
an RX thread takes bytes off the pty no faster than the wire delivers them, a TX thread puts the agent's bytes on
the pty no faster than the wire sends them (32-byte slices on a running schedule, so sleep jitter does not add up). The line rate is the limit the fraction is
relative to; framing (15 bytes per 527-byte frame), replies and round trips are what costs the rest.
"""
from __future__ import annotations

import argparse
import json
import os
import threading
import time
import tty

from ondevice.profiling import protocol as P
from ondevice.profiling.session import DeviceSession
from ondevice.profiling.sim_agent import SimAgent
from ondevice.profiling.sim_io import FdIO, Paced
from ondevice.profiling.transports import open_transport

UART_BYTES_PER_S = 115200 / 10


def _upload(session: DeviceSession, data: bytes) -> float:
    t0 = time.perf_counter()
    session.load_model(data, int(P.ModelFormat.RAW), "blob")
    return time.perf_counter() - t0


def pty_upload(nbytes: int, window: int) -> dict:
    master, slave = os.openpty()
    tty.setraw(slave)
    agent = SimAgent("litert", rx_window=window)
    th = threading.Thread(target=agent.serve, args=(Paced(FdIO(master), UART_BYTES_PER_S),), daemon=True)
    th.start()
    t = open_transport(f"serial://{os.ttyname(slave)}?baud=115200")
    try:
        s = DeviceSession(t)
        s.hello()
        data = os.urandom(nbytes)
        dt = _upload(s, data)
        assert agent.blob == data, "the device holds different bytes"
    finally:
        t.close()
        agent.stop()
        th.join(timeout=5)
        os.close(slave)
        os.close(master)
    bps = nbytes / dt
    return {"bytes": nbytes, "window": window, "seconds": round(dt, 3), "bytes_per_s": round(bps, 1),
            "line_rate_fraction": round(bps / UART_BYTES_PER_S, 4)}


def _outer_product_tflite(path, n: int = 128):
    """A weightless model whose output is n*n float32 (64 KiB at n=128): a big GET_OUTPUT from a tiny upload."""
    import torch
    import litert_torch

    class Outer(torch.nn.Module):
        def forward(self, x):
            return x.unsqueeze(2) * x.unsqueeze(1)

    litert_torch.convert(Outer().eval(), (torch.randn(1, n),)).export(str(path))
    return path


def pty_download(tmpdir) -> dict:
    """Device -> host: GET_OUTPUT streams a 64 KiB output as MORE frames with no round trip per frame."""
    import numpy as np
    from pathlib import Path
    model = _outer_product_tflite(Path(tmpdir) / "outer.tflite")
    master, slave = os.openpty()
    tty.setraw(slave)
    agent = SimAgent("litert")
    th = threading.Thread(target=agent.serve, args=(Paced(FdIO(master), UART_BYTES_PER_S),), daemon=True)
    th.start()
    t = open_transport(f"serial://{os.ttyname(slave)}?baud=115200")
    try:
        s = DeviceSession(t)
        s.hello()
        s.load_model(model.read_bytes(), int(P.ModelFormat.TFLITE), "outer")
        x = np.linspace(-1, 1, 128, dtype=np.float32)
        s.set_input(0, x.tobytes())
        s.run(1, 0)
        t0 = time.perf_counter()
        raw = s.get_output(0)
        dt = time.perf_counter() - t0
        assert np.array_equal(np.frombuffer(raw, np.float32).reshape(128, 128), np.outer(x, x)), "wrong output"
    finally:
        t.close()
        agent.stop()
        th.join(timeout=5)
        os.close(slave)
        os.close(master)
    bps = len(raw) / dt
    return {"bytes": len(raw), "seconds": round(dt, 3), "bytes_per_s": round(bps, 1),
            "line_rate_fraction": round(bps / UART_BYTES_PER_S, 4)}


def socket_upload(nbytes: int, window: int = 8) -> dict:
    t = open_transport(f"sim://litert?window={window}")
    try:
        s = DeviceSession(t)
        s.hello()
        data = os.urandom(nbytes)
        dt = _upload(s, data)
        assert t.agent.blob == data
    finally:
        t.close()
    return {"bytes": nbytes, "window": window, "seconds": round(dt, 3), "bytes_per_s": round(nbytes / dt, 1)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description="protocol throughput over a 115200-baud pty and a socket")
    ap.add_argument("--kib", type=int, default=64, help="upload size over the pty (KiB)")
    ap.add_argument("--socket-mib", type=int, default=8, help="upload size over the socket (MiB)")
    a = ap.parse_args(argv)
    streamed = pty_upload(a.kib * 1024, window=8)
    print("pty, 8 chunks in flight:", json.dumps(streamed))
    stopwait = pty_upload(a.kib * 1024 // 4, window=1)
    print("pty, stop-and-wait:     ", json.dumps(stopwait))
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        down = pty_download(tmp)
    print("pty, output download:   ", json.dumps(down))
    sock = socket_upload(a.socket_mib * 1024 * 1024)
    print("socket:                 ", json.dumps(sock))
    result = {"pty_line_rate_fraction": streamed["line_rate_fraction"],
              "pty_stop_and_wait_fraction": stopwait["line_rate_fraction"],
              "pty_download_fraction": down["line_rate_fraction"],
              "pty_bytes_per_s": streamed["bytes_per_s"], "uart_bytes_per_s": UART_BYTES_PER_S,
              "socket_bytes_per_s": sock["bytes_per_s"], "max_payload": P.MAX_PAYLOAD}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
