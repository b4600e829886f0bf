"""``sim://<runtime>``: the host simulator agent (``profiling/sim_agent.py``) behind a real local TCP socket.

Query options: ``process=1`` runs the agent in its own Python process (its peak RAM is then its own; default
in a thread, which starts instantly), ``window=N``, ``max_payload=N``, ``max_runs=N`` (thread mode),
``pace=BYTES_PER_S`` (emulate a UART's line rate), ``artifact=FOLDER`` (an export folder, tflm or mcu, served as
the agent's built-in model, as firmware built with it would be; the profiler adds it for a folder).
"""
from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import quote

from ondevice.errors import ConfigError, TransportError
from ondevice.profiling.transports import TRANSPORTS, Attached, split_url
from ondevice.profiling.transports.socket import SocketStream


@TRANSPORTS.register("sim")
class SimTransport(SocketStream):
    """Starts an agent, connects to it, and stops it (by PID or thread) on close."""

    board = "host"
    list_rank = 50
    device_all = "extensions"

    def __init__(self, sock, url, agent=None, thread=None, proc=None):
        super().__init__(sock, url)
        self.agent, self.thread, self.proc = agent, thread, proc

    @classmethod
    def open(cls, url: str, *, firmware: Path | None = None) -> "SimTransport":
        _, runtime, q = split_url(url)
        runtime = runtime.strip("/")
        from ondevice.runtimes.base import get_runtime, runtime_names
        if runtime not in runtime_names():
            raise ConfigError(f"sim:// has no runtime {runtime!r}", f"use one of: {', '.join(runtime_names())}")
        ok, why = get_runtime(runtime).available()
        if not ok:
            raise ConfigError(f"runtime {runtime} cannot run here: {why}", "install it, or pick another sim runtime")
        window = int(q.get("window", 8))
        max_runs = int(q.get("max_runs", 10000))
        max_payload = int(q.get("max_payload", 512))
        pace = float(q["pace"]) if "pace" in q else None
        builtin = q.get("artifact")
        if q.get("process", "0") in ("1", "true", "yes"):
            return cls._spawn(url, runtime, window, max_payload, pace, builtin)
        from ondevice.profiling.sim_agent import SimAgent, serve_socket
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(1)
        port = ls.getsockname()[1]
        agent = SimAgent(runtime, max_payload=max_payload, rx_window=window, max_runs=max_runs, builtin=builtin)
        t = threading.Thread(target=serve_socket, args=(agent, ls, pace), name=f"sim-agent-{runtime}", daemon=True)
        t.start()
        return cls(cls.connect("127.0.0.1", port, url), url, agent=agent, thread=t)

    @classmethod
    def discover(cls) -> list[Attached]:
        from ondevice.runtimes.base import get_runtime, runtime_names
        out = []
        for name in runtime_names():
            rt = get_runtime(name)
            # installed() where a runtime has it: available() may import torch, and listing must stay fast
            ok, why = getattr(rt, "installed", rt.available)()
            runs = f"runs {', '.join(rt.extensions)}" if rt.extensions else "host runtime (pick it explicitly)"
            out.append(Attached(f"sim://{name}", "sim", runs if ok else why, available=ok,
                                extensions=tuple(rt.extensions)))
        return out

    @classmethod
    def _spawn(cls, url, runtime, window, max_payload, pace, builtin=None) -> "SimTransport":
        cmd = [sys.executable, "-m", "ondevice.profiling.sim_agent", "--runtime", runtime, "--port", "0",
               "--window", str(window), "--max-payload", str(max_payload)]
        if pace:
            cmd += ["--pace", str(pace)]
        if builtin:
            cmd += ["--builtin", builtin]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            proc.kill()
            err = proc.stderr.read()[-400:]
            raise TransportError(f"the sim agent for {runtime} did not start: {err.strip() or line.strip()}",
                                 "run `python -m ondevice.profiling.sim_agent --runtime ...` to see why")
        port = int(line.split()[1])
        return cls(cls.connect("127.0.0.1", port, url), url, proc=proc)

    @classmethod
    def url_for_artifact(cls, url: str, artifact) -> str:
        """An export folder (tflm, mcu) becomes the agent's built-in model; files are uploaded as before."""
        _, runtime, q = split_url(url)
        if "artifact" in q:
            return url
        if runtime.strip("/") == "mcu-host":  # generated C only: a .tflite runs as its cached mcu build
            from ondevice.export.mcu import mcu_artifact
            artifact = mcu_artifact(artifact)
        if not Path(str(artifact)).is_dir():
            return url
        return url + ("&" if "?" in url else "?") + "artifact=" + quote(str(Path(str(artifact)).resolve()))

    def reset_device(self) -> bool:
        """Make the agent reboot as a real device would (used by ``fault://...?reset_after=``)."""
        if self.agent is None:
            raise TransportError("cannot reset a process sim agent from the host", "use sim:// without process=1")
        self.agent.request_reset()
        return True

    def close(self) -> None:
        super().close()
        if self.agent is not None:
            self.agent.stop()
            self.thread.join(timeout=5)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # our own child, by PID
                self.proc.wait(timeout=5)
