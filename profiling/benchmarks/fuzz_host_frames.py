"""Fuzz the host's frame decoder, message parsers and reply validation: no input may raise anything but an
``OndeviceError`` (a clean rejection); any other exception is a crash.

Run: ``python -m ondevice.profiling.benchmarks.fuzz_host_frames --runs 1000000``. With atheris installed (the dev
extra) inputs come from libFuzzer's coverage-guided engine, seeded with ``profiling/protocol_vectors``; without
it, from a seeded random generator. The last line is one JSON object: ``inputs``, ``crashes``, ``seconds``,
``engine``. A crash leaves its input in ``--artifacts`` (``crash-*``) and the exit status is non-zero.

One input drives one of four paths (its first byte picks):
0. raw bytes on the link: ``Link.recv`` over a fake transport (COBS, CRC, resync, BOOT/LOG handling), then each
   frame's fields decoded and checked as the session does;
1. one valid frame (COBS and CRC right) of a device message type with a fuzzed payload;
2. a structured reply: fields packed from fuzzed integers (tensor lists, op lists, timings), so the validators
   see plausible and absurd values alike;
3. a whole session (HELLO, MODEL_INFO, RUN, GET_OUTPUT, GET_MEMORY, GET_OP_TIMINGS) against a fake device that
   answers each request with fuzzed replies.
"""
from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

from ondevice.errors import OndeviceError
from ondevice.profiling import protocol as P
from ondevice.profiling import link as L
from ondevice.profiling import session as S
from ondevice.profiling import transfers as X
from ondevice.profiling import validation as V
from ondevice.profiling.inputs import make_inputs
from ondevice.profiling.link import Link, device_error
from ondevice.profiling.protocol import MsgType as T
from ondevice.profiling.session import DeviceSession
from ondevice.profiling.transports import Transport

R = P.reply_type
DEVICE_TYPES = [R(t) for t in P.REQUESTS] + [T.ERROR, T.BOOT, T.LOG]
INFO = P.DeviceInfo(version=1, caps=0xFF, max_payload=512, rx_window=4, max_runs=100, timer_units=0b0101,
                    default_unit=0, clock_hz=25_000_000, ram_bytes=64 << 10, flash_bytes=256 << 10,
                    builtin_models=1, boot_id=7, device="fuzz", runtime="od-mcu", board="fuzz")
VECTORS = Path(__file__).resolve().parents[1] / "protocol_vectors"


class Data:
    """A cursor over the input bytes (what atheris' FuzzedDataProvider does, with no dependency)."""

    def __init__(self, b: bytes):
        self.b, self.i = b, 0

    def int(self, nbytes: int) -> int:
        raw = self.b[self.i:self.i + nbytes]
        self.i += nbytes
        return int.from_bytes(raw.ljust(nbytes, b"\0"), "little")

    def pick(self, seq):
        return seq[self.int(1) % len(seq)]

    def bytes(self, n: int) -> bytes:
        raw = self.b[self.i:self.i + n]
        self.i += n
        return raw

    def rest(self) -> bytes:
        raw = self.b[self.i:]
        self.i = len(self.b)
        return raw


def check(f: P.Frame, info: P.DeviceInfo = INFO) -> None:
    """What the session does with one device frame: decode its fields, check them, use the checked ones."""
    if f.type == T.ERROR:
        device_error(f, "fuzz")
        return
    if f.type in (T.BOOT, T.LOG) or f.type not in DEVICE_TYPES:
        return
    v = P.unpack(f)
    t = f.type & 0x7F
    if t == T.HELLO:
        V.check_hello(v)
        P.DeviceInfo.from_fields(v).units()
    elif t == T.MODEL_INFO:
        V.check_model_info(v, info)
        make_inputs(v["tensors"][:v["n_inputs"]])  # where an unchecked dtype or dimension used to crash
    elif t in (T.RUN, T.GET_TIMINGS):
        V.check_run_data(v, f.type_name, runs=100, unit=info.default_unit, max_payload=info.max_payload,
                         elapsed_s=1.0)
        P.UNIT_NAMES[P.TimerUnit(v["unit"])]
    elif t == T.GET_OUTPUT:
        V.check_output(v, index=0, total=16, max_payload=info.max_payload)
    elif t == T.GET_MEMORY:
        V.check_memory(v, info)
    elif t == T.GET_OP_TIMINGS:
        V.check_op_timings(v, info, None)
        P.UNIT_NAMES[P.TimerUnit(v["unit"])]


class FakeLink(Transport):
    """Bytes in, nothing out: the host's receive side only."""

    def __init__(self, d: Data):
        self.d = d

    def read(self, n: int, timeout: float) -> bytes:
        return self.d.bytes(1 + self.d.int(1) % 64) if self.d.i < len(self.d.b) else b""

    def write(self, data: bytes) -> None:
        pass


class FakeDevice(Transport):
    """Answers every request with 1-3 fuzzed frames: mostly the right reply type and seq, fields fuzzed."""

    def __init__(self, d: Data):
        self.d, self.out, self.dec = d, bytearray(), P.StreamDecoder()

    def write(self, data: bytes) -> None:
        for req in self.dec.feed(data):
            for _ in range(1 + self.d.int(1) % 3):
                kind = self.d.int(1)
                type_ = R(req.type) if kind < 200 else self.d.pick(DEVICE_TYPES)
                seq = req.seq if kind % 16 else self.d.int(2)
                payload = structured(self.d, type_) if kind % 2 else self.d.bytes(self.d.int(1) % 80)
                flags = P.FLAG_MORE if kind % 5 == 1 else 0
                self.out += P.encode(type_, seq, payload[:P.MAX_PAYLOAD], flags)

    def read(self, n: int, timeout: float) -> bytes:
        data, self.out = bytes(self.out[:n]), self.out[n:]
        return data


def structured(d: Data, type_: int) -> bytes:
    """A payload packed from fuzzed field values (lists sized by the fuzzer), valid in layout."""
    schema = P.schema_for(type_)
    v: dict = {}
    for name, kind in schema:
        if kind in ("u8", "u16", "u32", "u64", "i32"):
            v[name] = d.int(int(kind[1:]) // 8) if d.int(1) % 4 else d.pick([0, 1, 0xFF, 0xFFFF, P.UNKNOWN_U32])
            if kind == "u8":
                v[name] &= 0xFF
            if kind == "u16":
                v[name] &= 0xFFFF
            if kind == "i32":
                v[name] = struct.unpack("<i", struct.pack("<I", v[name] & 0xFFFFFFFF))[0]
        elif kind == "f32":
            v[name] = struct.unpack("<f", d.bytes(4).ljust(4, b"\0"))[0]
        elif kind == "sha256":
            v[name] = d.bytes(32).ljust(32, b"\0")
        elif kind in ("str8", "bytes"):
            v[name] = d.bytes(d.int(1) % 40).decode("latin-1") if kind == "str8" else d.bytes(d.int(1) % 64)
        elif kind == "u64[]":
            v["count"] = d.int(1) % 8
            v[name] = [d.int(8) for _ in range(v["count"])]
        elif kind == "tensors":
            n = (v.get("n_inputs", 0) + v.get("n_outputs", 0)) % 4
            v["n_inputs"], v["n_outputs"] = n % 3, n - n % 3
            v[name] = [{"dtype": d.int(1) % 12, "shape": [d.pick([1, 2, 16, 49, 0, 0xFFFFFFFF, d.int(4)])
                                                          for _ in range(d.int(1) % 10)],
                        "scale": struct.unpack("<f", d.bytes(4).ljust(4, b"\0"))[0], "zero_point": d.int(1) - 128,
                        "name": "t"} for _ in range(n)]
        elif kind == "ops":
            v["count"] = d.int(1) % 4
            v[name] = [{"time": d.int(8), "name": "OP"} for _ in range(v["count"])]
    try:
        return P.pack_fields(schema, v)
    except (struct.error, ValueError, KeyError, OverflowError):
        return d.rest()


class Clock:
    """Stands in for the session's ``time``: every reading is 10 ms later, so a timeout passes in a few polls
    instead of real waiting (the fake device has always answered already)."""

    def __init__(self):
        self.t = 0.0

    def monotonic(self) -> float:
        self.t += 0.01
        return self.t


def session(d: Data) -> None:
    s = DeviceSession(FakeDevice(d), timeout=0.05, retries=1, run_timeout=0.05)
    for call in (s.hello, s.model_info, lambda: s.run(3, 0), lambda: s.get_output(0), s.get_memory,
                 s.get_op_timings):
        try:
            call()
        except OndeviceError:
            pass


def one_input(data: bytes) -> None:
    """The fuzz target: raises only for a crash (anything but an OndeviceError)."""
    d = Data(data)
    mode = d.int(1) % 16
    clock = Clock()
    for m in (L, S, X):  # every module of the session that waits
        m.time = clock
    try:
        if mode < 5:
            link = Link(FakeLink(d))
            link.started = True
            while True:
                f = link.recv(0.05)
                if f is None:
                    break
                try:
                    check(f)
                except OndeviceError:
                    pass
        elif mode < 10:
            type_ = d.pick(DEVICE_TYPES + [d.int(1)])
            wire = P.encode(type_, d.int(2), d.rest()[:P.MAX_PAYLOAD], d.int(1))
            for f in P.StreamDecoder().feed(wire):
                check(f)
        elif mode < 15:
            type_ = d.pick(DEVICE_TYPES)
            check(P.decode_frame(P.encode(type_, 1, structured(d, type_)[:P.MAX_PAYLOAD])))
        else:
            session(d)
    except OndeviceError:
        pass
    finally:
        for m in (L, S, X):
            m.time = time


def seeds() -> list[bytes]:
    """The protocol vectors' frames as mode-1 inputs (type index, seq, payload)."""
    out = []
    for v in json.loads((VECTORS / "frames.json").read_text())["vectors"]:
        if v["type"] in DEVICE_TYPES:
            out.append(bytes([5, DEVICE_TYPES.index(v["type"]), 0, 0, 0]) + bytes.fromhex(v["payload_hex"]))
    return out


def _random(runs: int, seed: int) -> int:
    import random
    rng = random.Random(seed)
    pool = seeds()
    for i in range(runs):
        if i % 2 and pool:  # mutate a seed: flip, insert and cut bytes
            b = bytearray(rng.choice(pool))
            for _ in range(rng.randrange(1, 8)):
                op = rng.randrange(3)
                if op == 0 and b:
                    b[rng.randrange(len(b))] = rng.randrange(256)
                elif op == 1:
                    b.insert(rng.randrange(len(b) + 1), rng.randrange(256))
                elif b:
                    del b[rng.randrange(len(b)):]
            data = bytes(b)
        else:
            data = rng.randbytes(rng.randrange(1, 700))
        one_input(data)
    return runs


def _atheris_child(argv: list[str]) -> None:
    import inspect

    import atheris

    # coverage for the code under test only: instrumenting numpy and torch too would take minutes
    for m in (P, V, S):
        for obj in vars(m).values():
            if getattr(obj, "__module__", None) != m.__name__:
                continue
            funcs = [obj] if inspect.isfunction(obj) else [f for f in vars(obj).values() if inspect.isfunction(f)] \
                if inspect.isclass(obj) else []
            for f in funcs:
                atheris.instrument_func(f)
    atheris.Setup([sys.argv[0], *argv], one_input)
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--engine", choices=("atheris", "random"), default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--artifacts", default="fuzz-artifacts")
    ap.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    from ondevice import log
    log.console.quiet = True  # the session warns once per corrupt reply: millions of lines otherwise
    if a.child is not None:
        _atheris_child(a.child)
        return 0
    engine = a.engine
    if engine is None:
        try:
            import atheris  # noqa: F401
            engine = "atheris"
        except ImportError:
            engine = "random"
    t0 = time.monotonic()
    if engine == "random":
        crashes = 0
        _random(a.runs, a.seed)  # an exception propagates: the traceback is the crash report
        n = a.runs
    else:
        art = Path(a.artifacts)
        corpus = art / "corpus"
        corpus.mkdir(parents=True, exist_ok=True)
        for k, b in enumerate(seeds()):
            (corpus / f"seed-{k:03d}").write_bytes(b)
        cmd = [sys.executable, "-m", "ondevice.profiling.benchmarks.fuzz_host_frames", "--child",
               f"-runs={a.runs}", f"-seed={a.seed + 1}", "-max_len=1024", "-print_final_stats=1",
               f"-artifact_prefix={art}/", str(corpus)]
        p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONHASHSEED="0"))
        stats = {}
        for line in p.stderr.splitlines():  # libFuzzer's -print_final_stats lines: "stat::name: value"
            if line.startswith("stat::"):
                k, _, val = line[6:].partition(":")
                stats[k.strip()] = val.strip()
        n = int(stats.get("number_of_executed_units", 0))
        crashes = 0 if p.returncode == 0 else 1
        if crashes:
            sys.stderr.write(p.stderr[-4000:])
    print(json.dumps({"inputs": n, "crashes": crashes, "seconds": round(time.monotonic() - t0, 1),
                      "engine": engine}))
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
