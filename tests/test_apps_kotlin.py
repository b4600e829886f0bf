"""The Android app's pure-Kotlin parts on the JVM: protocol vectors, the frontend twin, and the JVM agent.

kotlinc (Debian's 1.3) compiles apps/android/{protocol-core,frontend,jvm-agent} once per session into a tmp jar;
each test then runs a JVM main from it. The Android `app` module itself needs the Android SDK and is not built here.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import require_tool
from ondevice.features import frontend as F
from ondevice.features import tables as T
from ondevice.features import twins
from ondevice.profiling import protocol as P
from ondevice.profiling.protocol import ErrorCode as E
from ondevice.profiling.protocol import MsgType as M

REPO = Path(__file__).resolve().parents[1]
ANDROID = REPO / "apps" / "android"
VECTORS = REPO / "profiling" / "protocol_vectors"
FRONTEND_VECTORS = REPO / "tests" / "vectors" / "frontend"
SOURCES = [ANDROID / "protocol-core/src/main/kotlin", ANDROID / "frontend/src/main/kotlin",
           ANDROID / "jvm-agent/src/main/kotlin", ANDROID / "jvm-agent/src/test/kotlin"]


@pytest.fixture(scope="session")
def jvm_jar(tmp_path_factory) -> Path:
    """All JVM-side Kotlin compiled once (about 20 s with kotlinc 1.3)."""
    kotlinc = require_tool("kotlinc")
    require_tool("java")
    jar = tmp_path_factory.mktemp("kotlin") / "ondevice-jvm.jar"
    r = subprocess.run([kotlinc, *map(str, SOURCES), "-include-runtime", "-d", str(jar)],
                       capture_output=True, text=True, timeout=600)
    errors = [ln for ln in (r.stdout + r.stderr).splitlines() if "error:" in ln]
    assert r.returncode == 0 and jar.is_file(), "kotlinc failed:\n" + "\n".join(errors or [r.stderr[-3000:]])
    return jar


def _java(jar: Path, main: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["java", "-cp", str(jar), main, *args], capture_output=True, text=True, timeout=timeout)


def _summary(out: str, what: str) -> tuple[int, int]:
    m = re.search(rf"{what}: (\d+) passed, (\d+) failed", out)
    assert m, f"no summary line in:\n{out[-2000:]}"
    return int(m.group(1)), int(m.group(2))


# ---------------------------------------------------------------------------------------------------------------
# Protocol vectors

def test_kotlin_protocol_core_passes_shared_vectors(jvm_jar):
    r = _java(jvm_jar, "dev.ondevice.jvmtest.ProtocolVectorTest", str(VECTORS))
    passed, failed = _summary(r.stdout, "protocol vectors")
    assert r.returncode == 0 and failed == 0, r.stdout
    n_vec = sum(len(json.loads((VECTORS / f).read_text())["vectors"]) for f in
                ("crc.json", "cobs.json", "frames.json", "stream.json"))
    # crc 1 check, cobs 2, frames 4, streams 2 x 2 per vector: every vector was checked, none skipped
    assert passed >= n_vec + 1


def test_kotlin_vector_checker_catches_a_corrupted_vector(jvm_jar, tmp_path):
    """The checker is not vacuous: one flipped byte in one frame vector makes it fail."""
    for f in VECTORS.glob("*.json"):
        shutil.copy(f, tmp_path / f.name)
    doc = json.loads((tmp_path / "frames.json").read_text())
    v = doc["vectors"][0]
    wire = bytearray.fromhex(v["frame_hex"])
    wire[3] ^= 0x01
    v["frame_hex"] = wire.hex()
    (tmp_path / "frames.json").write_text(json.dumps(doc))
    r = _java(jvm_jar, "dev.ondevice.jvmtest.ProtocolVectorTest", str(tmp_path))
    assert r.returncode == 1
    assert f"FAIL frames/{v['name']}/encode" in r.stdout


# ---------------------------------------------------------------------------------------------------------------
# Frontend twin

def test_generated_frontend_tables_are_current():
    from importlib import util
    spec = util.spec_from_file_location("gen_frontend_tables", REPO / "apps/tools/gen_frontend_tables.py")
    mod = util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for path, text in mod.outputs().items():
        assert path.read_text() == text, f"{path} is stale: run python apps/tools/gen_frontend_tables.py"
    assert f'CONFIG_HASH = "{T.config_hash()}"' in mod.KOTLIN.read_text()


def _clip_doc(name: str, wav: np.ndarray) -> dict:
    feats = F.compute_features(wav)
    return {"format": twins.VECTOR_FORMAT, "config_hash": T.config_hash(), "name": name,
            "wav_int16_le_b64": base64.b64encode(wav.astype("<i2").tobytes()).decode(),
            "features_shape": list(feats.shape), "features": feats.tolist()}


def _quant_cases(rng: np.random.Generator) -> dict:
    """Input scales like real models' plus random ones, over every edge of the uint16 feature range."""
    scales = [0.5, 1 / 256, 0.00390625, 1 / 255, 0.0546875, 0.1, 3.0, 1e-4, 250.0]
    scales += [float(np.float32(s)) for s in np.exp(rng.uniform(np.log(1e-5), np.log(500.0), 12))]
    feats = np.concatenate([np.array([0, 1, 2, 127, 128, 255, 256, 4095, 32767, 32768, 65534, 65535]),
                            rng.integers(0, 65536, 200)]).astype(np.uint16)
    cases = []
    for s in scales:
        zp = int(rng.integers(-128, 128))
        mult, shift = F.quant_multiplier(s)
        cases.append({"scale": s, "zero_point": zp, "mult": mult, "shift": shift, "features": feats.tolist(),
                      "q": F.quantize_features(feats, s, zp).astype(int).tolist(),
                      "float": F.to_model_input(feats[None]).ravel().astype(float).tolist()})
    return {"format": "ondevice-quant-cases", "cases": cases}


def test_kotlin_frontend_equals_python_frontend(jvm_jar, tmp_path):
    """Fresh vectors from the Python frontend (with per-step traces), odd clip lengths, and the quantiser."""
    seed = int(os.environ.get("OD_APPS_SEED", time.time())) & 0xFFFF  # new clips each run; reproduce with OD_APPS_SEED
    rng = np.random.default_rng(seed)
    seed_note = f"reproduce with OD_APPS_SEED={seed}"
    twins.write_vectors(tmp_path, n=6, seed=int(rng.integers(1 << 30)))
    extra = {
        "short_0p5s": rng.normal(0, 3000, 8000),
        "long_2p3s": rng.normal(0, 200, 36800) * np.sin(np.arange(36800) / 900.0),
        "one_window": rng.normal(0, 20000, T.WINDOW),
        "rails": np.where(rng.random(16000) < 0.5, -32768, 32767),
        "dc_offset": np.full(16000, -12000.0) + rng.normal(0, 2, 16000),
    }
    for name, x in extra.items():
        wav = np.clip(np.round(x), -32768, 32767).astype(np.int16)
        (tmp_path / f"x_{name}.json").write_text(json.dumps(_clip_doc(name, wav)))
    (tmp_path / "quant.json").write_text(json.dumps(_quant_cases(rng)))
    r = _java(jvm_jar, "dev.ondevice.jvmtest.FrontendVectorTest", str(tmp_path), str(FRONTEND_VECTORS))
    passed, failed = _summary(r.stdout, "frontend vectors")
    assert r.returncode == 0 and failed == 0, f"{r.stdout}\n{seed_note}"
    assert "(14 clips)" in r.stdout  # 6 fresh + 5 odd-length + 3 committed


# ---------------------------------------------------------------------------------------------------------------
# JVM agent over a real socket

def odfc_model(n_in: int, n_out: int, rng: np.random.Generator) -> tuple[bytes, dict]:
    """An ODFC v1 int8 fully-connected model (format in apps/android/README.md) and its numpy reference."""
    w = rng.integers(-127, 128, (n_out, n_in)).astype(np.int8)
    b = rng.integers(-20000, 20000, n_out).astype(np.int32)
    in_zp, out_zp = int(rng.integers(-20, 20)), int(rng.integers(-10, 10))
    mult, shift = int(rng.integers(1 << 30, 1 << 31)), int(rng.integers(44, 50))
    head = b"ODFC" + bytes([1, 0, 0, 0]) + struct.pack("<IIififii", n_in, n_out, in_zp, 0.02, out_zp, 0.05,
                                                       mult, shift)
    blob = head + w.tobytes() + b.astype("<i4").tobytes()

    def ref(x: np.ndarray) -> np.ndarray:
        acc = b.astype(np.int64) + (w.astype(np.int64) @ (x.astype(np.int64) - in_zp))
        q = ((acc * mult + (1 << (shift - 1))) >> shift) + out_zp
        return np.clip(q, -128, 127).astype(np.int8)

    return blob, {"ref": ref, "in_zp": in_zp, "in_scale": np.float32(0.02)}


class JvmAgent:
    """The JVM agent as a subprocess (`--once`) plus a minimal client on the host codec."""

    def __init__(self, jar: Path, *args: str):
        self.proc = subprocess.Popen(["java", "-cp", str(jar), "dev.ondevice.jvmagent.JvmAgentMain", "--once", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.match(r"PORT (\d+)", line)
        assert m, f"agent did not start: {line!r} {self.proc.stderr.read() if self.proc.poll() is not None else ''}"
        self.port = int(m.group(1))
        self.sock: socket.socket | None = None
        self.dec = P.StreamDecoder()
        self.pending: list[P.Frame] = []
        self.logs: list[str] = []
        self.seq = 0

    def connect(self) -> "JvmAgent":
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self

    def frame(self, timeout: float = 10.0) -> P.Frame:
        """The next frame; LOG frames are collected in ``self.logs`` instead."""
        end = time.monotonic() + timeout
        while True:
            while not self.pending:
                self.sock.settimeout(max(0.01, end - time.monotonic()))
                data = self.sock.recv(65536)
                assert data, "agent closed the connection"
                self.pending += self.dec.feed(data)
            fr = self.pending.pop(0)
            if fr.type != M.LOG:
                return fr
            self.logs.append(P.unpack(fr)["message"].decode())

    def send(self, t: int, seq: int | None = None, **fields) -> int:
        if seq is None:
            self.seq = (self.seq + 1) & 0xFFFF
            seq = self.seq
        self.sock.sendall(P.message(t, seq, **fields))
        return seq

    def reply(self, t: int, seq: int | None = None, **fields) -> list[tuple[P.Frame, dict]]:
        """Send a request and collect its whole (possibly streamed) reply; ERROR frames are returned too."""
        s = self.send(t, seq, **fields)
        out = []
        while True:
            fr = self.frame()
            if fr.type in (M.LOG, M.BOOT):
                continue
            assert fr.seq == s, f"reply seq {fr.seq} for request seq {s}"
            out.append((fr, P.unpack(fr)))
            if fr.type == M.ERROR or not fr.more:
                return out

    def one(self, t: int, **fields) -> dict:
        (fr, f), = self.reply(t, **fields)
        assert fr.type == P.reply_type(t), f"{P.type_name(fr.type)} {f}"
        return f

    def upload(self, blob: bytes, fmt: int = P.ModelFormat.RAW, name: str = "tinyfc_jvm_int8") -> None:
        self.one(M.LOAD_MODEL_BEGIN, total_bytes=len(blob), format=fmt, sha256=hashlib.sha256(blob).digest(),
                 name=name)
        for off, piece in P.chunks(blob, 508):
            assert self.one(M.LOAD_MODEL_CHUNK, offset=off, data=piece)["received"] == off + len(piece)
        self.one(M.LOAD_MODEL_END)

    def set_input(self, index: int, data: bytes) -> None:
        for off, piece in P.chunks(data, 503):
            self.one(M.SET_INPUT, index=index, total=len(data), offset=off, data=piece)

    def output(self, index: int) -> bytes:
        frames = self.reply(M.GET_OUTPUT, index=index, offset=0, length=P.UNKNOWN_U32)
        assert all(fr.type == P.reply_type(M.GET_OUTPUT) for fr, _ in frames), frames[-1][1]
        return b"".join(f["data"] for _, f in frames)

    def close(self) -> None:
        if self.sock:
            self.sock.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture
def agent(jvm_jar):
    a = JvmAgent(jvm_jar).connect()
    yield a
    a.close()


def _boot(a: JvmAgent) -> dict:
    fr = a.frame()
    assert fr.type == M.BOOT
    return P.unpack(fr)


def test_jvm_agent_session_runs_a_model_bit_exact(agent):
    boot = _boot(agent)
    hello = agent.one(M.HELLO, host_version=1, host_max_payload=512)
    assert hello["boot_id"] == boot["boot_id"] != 0
    assert hello["runtime"] == "jvm-dense-int8" and hello["max_payload"] == 512
    caps = P.Caps(hello["caps"])
    assert caps & P.Caps.LOAD_MODEL and caps & P.Caps.FRONTEND and caps & P.Caps.OP_TIMINGS

    rng = np.random.default_rng(5)
    blob, m = odfc_model(700, 24, rng)  # 16.8 KB: 34 chunks, input 700 B: 2 SET_INPUT chunks
    agent.upload(blob)
    info = agent.one(M.MODEL_INFO)
    assert info["sha256"] == hashlib.sha256(blob).hexdigest() and info["model_bytes"] == len(blob)
    assert [t["shape"] for t in info["tensors"]] == [[1, 700], [1, 24]]
    assert info["tensors"][0]["zero_point"] == m["in_zp"] and info["tensors"][0]["scale"] == m["in_scale"]

    x = rng.integers(-128, 128, 700).astype(np.int8)
    agent.set_input(0, x.tobytes())
    frames = agent.reply(M.RUN, runs=150, warmup=3, unit=P.UNIT_DEFAULT)
    assert all(fr.type == P.reply_type(M.RUN) for fr, _ in frames), frames[-1][1]
    assert frames[0][1]["count"] == 0 and frames[0][0].more  # liveness frame after the warm-ups
    timings = [t for _, f in frames for t in f["timings"]]
    firsts = [f["first_index"] for _, f in frames if f["count"]]
    assert len(timings) == 150 and firsts == sorted(firsts) and not frames[-1][0].more
    assert all(f["unit"] == P.TimerUnit.US for _, f in frames) and max(timings) > 0

    out = np.frombuffer(agent.output(0), dtype=np.int8)
    np.testing.assert_array_equal(out, m["ref"](x))

    mem = agent.one(M.GET_MEMORY)
    assert mem["model_bytes"] == len(blob) and 0 < mem["peak_ram_bytes"] < P.UNKNOWN_U32
    ops = agent.reply(M.GET_OP_TIMINGS, first_op=0)
    (fr, f), = ops
    assert f["total_ops"] == 1 and f["ops"][0]["name"] == "FULLY_CONNECTED"


def test_jvm_agent_runs_frontend_and_model_on_audio(agent):
    """SET_MODE 2 gives the Python frontend's exact features; mode 1 feeds them, quantised, into the model."""
    _boot(agent)
    agent.one(M.HELLO, host_version=1, host_max_payload=256)  # a smaller payload: more, shorter frames
    rng = np.random.default_rng(11)
    wav, _, _ = twins.read_vector(sorted(FRONTEND_VECTORS.glob("*_voiced.json"))[0])
    feats = F.compute_features(wav)

    assert agent.one(M.SET_MODE, mode=P.Mode.FRONTEND)["mode"] == P.Mode.FRONTEND
    for off, piece in P.chunks(wav.astype("<i2").tobytes(), 256 - 9):
        agent.one(M.SET_INPUT, index=P.AUDIO_INDEX, total=32000, offset=off, data=piece)
    frames = agent.reply(M.RUN, runs=3, warmup=0, unit=P.TimerUnit.NS)
    assert frames[-1][0].type == P.reply_type(M.RUN) and sum(f["count"] for _, f in frames) == 3
    got = np.frombuffer(agent.output(P.AUDIO_INDEX), dtype="<u2").reshape(49, 40)
    np.testing.assert_array_equal(got, feats)

    blob, m = odfc_model(49 * 40, 4, rng)
    agent.upload(blob)
    agent.one(M.SET_MODE, mode=P.Mode.FRONTEND_MODEL)
    for off, piece in P.chunks(wav.astype("<i2").tobytes(), 256 - 9):
        agent.one(M.SET_INPUT, index=P.AUDIO_INDEX, total=32000, offset=off, data=piece)
    frames = agent.reply(M.RUN, runs=2, warmup=1, unit=P.UNIT_DEFAULT)
    assert frames[-1][0].type == P.reply_type(M.RUN)
    q = F.quantize_features(feats, float(m["in_scale"]), m["in_zp"]).ravel()
    np.testing.assert_array_equal(np.frombuffer(agent.output(0), dtype=np.int8), m["ref"](q))


def test_jvm_agent_retries_errors_and_resync(agent):
    """Section 3 semantics: deduped retries, go-back-N offsets, SHA check, error codes, garbage resync, RESET."""
    boot = _boot(agent)
    agent.one(M.HELLO, host_version=1, host_max_payload=512)
    rng = np.random.default_rng(3)
    blob, m = odfc_model(32, 8, rng)  # 328 bytes: one frame

    def err(frames) -> dict:
        (fr, f), = frames
        assert fr.type == M.ERROR, P.type_name(fr.type)
        return f

    # A retried RUN whose ERROR was lost gets the same ERROR again.
    seq = agent.send(M.RUN, runs=1, warmup=0, unit=P.UNIT_DEFAULT)
    first = agent.frame()
    agent.send(M.RUN, seq=seq, runs=1, warmup=0, unit=P.UNIT_DEFAULT)
    again = agent.frame()
    assert first.type == again.type == M.ERROR and first.seq == again.seq == seq
    assert P.unpack(first)["code"] == P.unpack(again)["code"] == E.NO_MODEL
    agent.sock.sendall(P.encode(0x55, 900))
    fr = agent.frame()
    assert fr.type == M.ERROR and fr.seq == 900
    assert P.unpack(fr)["code"] == E.UNKNOWN_TYPE and P.unpack(fr)["detail"] == 0x55
    assert err(agent.reply(M.SET_MODE, mode=7))["code"] == E.UNSUPPORTED
    assert err(agent.reply(M.SELECT_BUILTIN_MODEL, index=0, name=""))["code"] == E.UNSUPPORTED

    # A wrong SHA-256 is caught on the device and the model is discarded.
    agent.one(M.LOAD_MODEL_BEGIN, total_bytes=len(blob), format=P.ModelFormat.RAW, sha256=b"\x01" * 32, name="x")
    agent.one(M.LOAD_MODEL_CHUNK, offset=0, data=blob)
    assert err(agent.reply(M.LOAD_MODEL_END))["code"] == E.SHA_MISMATCH
    assert err(agent.reply(M.MODEL_INFO))["code"] == E.NO_MODEL
    assert err(agent.reply(M.LOAD_MODEL_BEGIN, total_bytes=10, format=P.ModelFormat.TFLITE, sha256=b"\0" * 32,
                           name="m"))["code"] == E.UNSUPPORTED

    # A retried BEGIN (same seq, nothing in between) is answered again; a gap reports what the device holds;
    # a duplicate chunk is acknowledged without rewriting.
    for retry in range(2):
        s = agent.send(M.LOAD_MODEL_BEGIN, seq=s if retry else None, total_bytes=len(blob),
                       format=P.ModelFormat.RAW, sha256=hashlib.sha256(blob).digest(), name="tinyfc_jvm_int8")
        fr = agent.frame()
        assert fr.type == P.reply_type(M.LOAD_MODEL_BEGIN) and fr.seq == s
    assert agent.one(M.LOAD_MODEL_CHUNK, offset=0, data=blob[:100])["received"] == 100
    gap = err(agent.reply(M.LOAD_MODEL_CHUNK, offset=300, data=blob[300:400]))
    assert gap["code"] == E.BAD_OFFSET and gap["detail"] == 100
    assert agent.one(M.LOAD_MODEL_CHUNK, offset=50, data=blob[50:100])["received"] == 100
    assert err(agent.reply(M.LOAD_MODEL_END))["code"] == E.BAD_OFFSET
    agent.one(M.LOAD_MODEL_CHUNK, offset=100, data=blob[100:])
    agent.one(M.LOAD_MODEL_END)
    agent.one(M.LOAD_MODEL_END)  # a repeated END after success replies again

    size = err(agent.reply(M.SET_INPUT, index=0, total=31, offset=0, data=b"\0"))
    assert size["code"] == E.INVALID_INPUT_SIZE and size["detail"] == 32
    assert err(agent.reply(M.SET_INPUT, index=3, total=32, offset=0, data=b"\0"))["code"] == E.BAD_INDEX
    x = rng.integers(-128, 128, 32).astype(np.int8)
    agent.set_input(0, x.tobytes())

    # Garbage glued to nothing, then a 0x00: the agent resynchronises and answers the next request.
    agent.sock.sendall(b"QEMU garbage \xff\xfe\x01" + b"\x00")
    assert agent.one(M.PING, data=b"\x00\x01\x00")["data"] == b"\x00\x01\x00"

    # A retried RUN (same seq) re-streams the stored timings instead of running again.
    run_seq = agent.send(M.RUN, runs=70, warmup=0, unit=P.TimerUnit.NS)
    first = []
    while True:
        fr = agent.frame()
        first.append(P.unpack(fr)["timings"])
        if not fr.more:
            break
    agent.send(M.RUN, seq=run_seq, runs=70, warmup=0, unit=P.TimerUnit.NS)
    again = []
    while True:
        fr = agent.frame()
        assert fr.type == P.reply_type(M.RUN) and fr.seq == run_seq
        again.append(P.unpack(fr)["timings"])
        if not fr.more:
            break
    assert sum(first, []) == sum(again, []) and len(sum(again, [])) == 70
    sub = agent.reply(M.GET_TIMINGS, first_index=60, count=5)
    assert [t for _, f in sub for t in f["timings"]] == sum(first, [])[60:65]
    np.testing.assert_array_equal(np.frombuffer(agent.output(0), dtype=np.int8), m["ref"](x))

    # A frame of an unknown protocol version is refused with the device's version as detail.
    body = bytearray(P.frame_body(P.Frame(M.PING, 77, b"")))
    body[0] = 2
    body[-4:] = struct.pack("<I", P.crc32(bytes(body[:-4])))
    agent.sock.sendall(P.cobs_encode(bytes(body)) + b"\x00")
    fr = agent.frame()
    assert fr.type == M.ERROR and fr.seq == 77 and P.unpack(fr)["code"] == E.UNSUPPORTED_VERSION

    # RESET: reply first, then a BOOT with a new boot id and no model.
    agent.one(M.RESET)
    boot2 = P.unpack(agent.frame())
    assert boot2["reset_reason"] == P.ResetReason.SOFTWARE and boot2["boot_id"] != boot["boot_id"]
    assert err(agent.reply(M.MODEL_INFO))["code"] == E.NO_MODEL


def test_ondevice_profile_measures_the_jvm_agent_end_to_end(jvm_jar, tmp_path):
    """`ondevice profile --device socket://127.0.0.1:PORT` against the JVM agent, through the real CLI."""
    from ondevice.profiling.inputs import make_inputs
    blob, m = odfc_model(49 * 40, 4, np.random.default_rng(2))
    art = tmp_path / "tinyfc_jvm_int8.odfc"  # unknown suffix: uploaded as ModelFormat.RAW
    art.write_bytes(blob)
    a = JvmAgent(jvm_jar)
    try:
        r = subprocess.run([sys.executable, "-m", "ondevice", "profile", "--device", f"socket://127.0.0.1:{a.port}",
                            str(art), "--runs", "300", "--warmup", "5", "--out", str(tmp_path / "prof")],
                           capture_output=True, text=True, timeout=120, env={**os.environ, "NO_COLOR": "1"})
    finally:
        a.close()
    assert r.returncode == 0, r.stdout + r.stderr
    prof = json.loads((tmp_path / "prof" / "profile.json").read_text())
    assert prof["status"] == "ok" and prof["runs"] == 300
    assert prof["device"]["runtime"] == "jvm-dense-int8" and "FRONTEND" in prof["device"]["capabilities"]
    met = prof["metrics"]
    for k in ("latency_min_ms", "latency_p50_ms", "latency_p99_ms", "latency_max_ms", "peak_ram_bytes"):
        assert met[k]["source"] == "measured" and met[k]["value"] > 0, k
    assert met["latency_min_ms"]["value"] <= met["latency_p50_ms"]["value"] <= met["latency_max_ms"]["value"]
    assert len(prof["timings"]["values"]) == 300 and prof["timings"]["unit"] == "us"
    # The host's seeded input went through the agent's upload and chunking: outputs equal numpy's.
    (x,) = make_inputs(prof["model_info"]["inputs"], seed=0)
    assert prof["outputs"][0]["values"] == m["ref"](x.ravel()).tolist()
    assert prof["memory"]["model_bytes"] == len(blob)
    assert prof["op_timings"]["ops"][0]["name"] == "FULLY_CONNECTED"
    assert (tmp_path / "prof" / "report.html").is_file()
    # The RunObserver's LOG line (on a phone: battery current) reaches the host's device log after RUN.
    heap = [ln for ln in prof["link"]["device_logs"] if ln.startswith("jvm heap_used_bytes_max=")]
    assert heap and "runs=300" in heap[-1] and int(heap[-1].split()[1].split("=")[1]) > 0


def test_jvm_agent_selects_a_builtin_model(jvm_jar, tmp_path):
    """SELECT_BUILTIN_MODEL (how iOS serves Core ML models compiled into the app) by name and by index."""
    blob, m = odfc_model(40, 6, np.random.default_rng(8))
    f = tmp_path / "tinyfc_jvm_int8.odfc"
    f.write_bytes(blob)
    a = JvmAgent(jvm_jar, "--builtin", str(f)).connect()
    try:
        _boot(a)
        hello = a.one(M.HELLO, host_version=1, host_max_payload=512)
        assert hello["builtin_models"] == 1 and hello["caps"] & P.Caps.BUILTIN_MODELS
        (fr, v), = a.reply(M.SELECT_BUILTIN_MODEL, index=0xFF, name="nosuch")
        assert fr.type == M.ERROR and v["code"] == E.BAD_INDEX
        assert a.one(M.SELECT_BUILTIN_MODEL, index=0xFF, name="tinyfc") == {"index": 0, "name": "tinyfc"}
        assert a.one(M.SELECT_BUILTIN_MODEL, index=0, name="") == {"index": 0, "name": "tinyfc"}
        info = a.one(M.MODEL_INFO)
        assert info["sha256"] == hashlib.sha256(blob).hexdigest() and info["name"] == "tinyfc"
        x = np.arange(-20, 20, dtype=np.int8)
        a.set_input(0, x.tobytes())
        assert a.reply(M.RUN, runs=5, warmup=1, unit=P.UNIT_DEFAULT)[-1][0].type == P.reply_type(M.RUN)
        np.testing.assert_array_equal(np.frombuffer(a.output(0), dtype=np.int8), m["ref"](x))
    finally:
        a.close()


@pytest.mark.parametrize("seed", [0, 1, 2, 5])
def test_jvm_agent_survives_link_faults(jvm_jar, tmp_path, seed):
    """The host session through fault:// (4 % each of dropped, corrupted, duplicated and garbage-prefixed frames,
    both directions) around the JVM agent: retries and dedup give the exact outputs and every run, or a clear error."""
    from ondevice.profiling.inputs import make_inputs
    from ondevice.profiling.profiler import profile
    blob, m = odfc_model(49 * 40, 4, np.random.default_rng(2))
    art = tmp_path / "tinyfc_jvm_int8.odfc"
    art.write_bytes(blob)
    a = JvmAgent(jvm_jar)
    try:
        url = (f"fault://socket://127.0.0.1:{a.port}?drop=0.04&corrupt=0.04&dup=0.04&garbage=0.04&seed={seed}")
        r = profile(art, url, runs=200, warmup=2, out=None, timeout=0.5, retries=6, run_timeout=2.0, report=False)
    finally:
        a.close()
    assert r["status"] == "ok" and r["runs"] == 200 and len(r["timings"]["values"]) == 200
    (x,) = make_inputs(r["model_info"]["inputs"], seed=0)
    assert r["outputs"][0]["values"] == m["ref"](x.ravel()).tolist()


def _kotlin_funs(path: Path) -> list[str]:
    return re.findall(r"\bfun\s+(?:<[^>]*>\s*)?(?:[A-Za-z]+\.)?(\w+)\s*\(", path.read_text())


def _swift_funcs(path: Path) -> list[str]:
    return re.findall(r"\bfunc\s+(\w+)\s*[<(]", path.read_text())


def test_swift_twin_mirrors_kotlin_function_by_function():
    """The iOS core cannot be compiled here, so review relies on it mirroring the tested Kotlin: same files, and
    the same functions in the same order (Swift-only helpers allowed where listed)."""
    kt = ANDROID / "protocol-core/src/main/kotlin/dev/ondevice/protocol"
    sw = REPO / "apps/ios/Sources/ProtocolCore"
    swift_only = {"Agent": {"monotonicNs"}}  # the JVM has System.nanoTime
    renamed = {"toByteArray": "toBytes"}  # PayloadWriter's result, in each language's idiom
    for name in ("Cobs", "Protocol", "FrameCodec", "Payload", "Messages", "AgentBackend", "Agent"):
        k = [renamed.get(f, f) for f in _kotlin_funs(kt / f"{name}.kt")]
        s = [f for f in _swift_funcs(sw / f"{name}.swift") if f not in swift_only.get(name, set())]
        if name in ("Cobs", "Protocol", "Messages", "Agent"):
            assert k == s, f"{name}: Kotlin {k}\nSwift  {s}"
        else:  # private byte helpers and protocol-extension defaults differ in placement, not in content
            assert set(k) - {"u8"} <= set(s), f"{name}: missing in Swift: {set(k) - set(s)}"
    fk = _kotlin_funs(ANDROID / "frontend/src/main/kotlin/dev/ondevice/frontend/Frontend.kt")
    assert fk == _swift_funcs(REPO / "apps/ios/Sources/Frontend/Frontend.swift")


def test_host_profiles_the_kotlin_frontend_on_the_jvm_agent(jvm_jar, tmp_path):
    """`profile(mode="frontend+model" | "frontend")`: the host's audio goes through the Kotlin frontend on the
    agent; the features equal `compute_features`, and the model output equals numpy on the quantised features."""
    from ondevice.profiling.profiler import profile
    wav, _, _ = twins.read_vector(sorted(FRONTEND_VECTORS.glob("*_noise.json"))[0])
    blob, m = odfc_model(49 * 40, 4, np.random.default_rng(4))
    art = tmp_path / "tinyfc_jvm_int8.odfc"
    art.write_bytes(blob)
    results = {}
    for mode in ("frontend+model", "frontend"):
        a = JvmAgent(jvm_jar)
        try:
            results[mode] = profile(art, f"socket://127.0.0.1:{a.port}", runs=20, warmup=2, out=None, report=False,
                                    mode=mode, audio=wav)
        finally:
            a.close()
    feats = F.compute_features(wav)
    q = F.quantize_features(feats, float(m["in_scale"]), m["in_zp"]).ravel()
    both, fe = results["frontend+model"], results["frontend"]
    assert both["status"] == fe["status"] == "ok" and both["runs"] == fe["runs"] == 20
    assert both["outputs"][0]["values"] == m["ref"](q).tolist()
    assert fe["outputs"][0]["sha256"] == hashlib.sha256(feats.astype("<u2").tobytes()).hexdigest()
    assert fe["op_timings"]["ops"] == [] and both["op_timings"]["ops"][0]["name"] == "FULLY_CONNECTED"


def _parser(grammar: str):
    """A tree-sitter parser for ``grammar`` (kotlin or swift); in CI a missing package is a failure."""
    try:
        import importlib

        from tree_sitter import Language, Parser
        mod = importlib.import_module(f"tree_sitter_{grammar}")
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("tree-sitter grammars missing; pip install -e '.[dev]' installs them")
        pytest.skip("tree-sitter grammars not installed (pip install -e '.[dev]')")
    return Parser(Language(mod.language()))


def _syntax_errors(parser, path: Path) -> list[str]:
    src = path.read_bytes()
    bad, stack = [], [parser.parse(src).root_node]
    while stack:
        n = stack.pop()
        if n.type == "ERROR" or n.is_missing:
            bad.append(f"{path.relative_to(REPO)}:{n.start_point[0] + 1}: "
                       f"{src.splitlines()[n.start_point[0]].decode(errors='replace').strip()[:100]}")
        stack.extend(n.children)
    return bad


@pytest.mark.parametrize("grammar,root,suffixes", [
    ("kotlin", "apps/android", (".kt", ".kts")),
    ("swift", "apps/ios", (".swift",)),
])
def test_uncompiled_app_sources_parse(grammar, root, suffixes):
    """Syntax only: the Android app module and all Swift cannot be compiled here (no SDK, no swiftc), but a
    tree-sitter parse catches broken syntax in them. Types and APIs are not checked by this."""
    parser = _parser(grammar)
    files = [p for p in sorted((REPO / root).rglob("*")) if p.suffix in suffixes and "build" not in p.parts]
    assert len(files) >= 10
    errors = [e for f in files for e in _syntax_errors(parser, f)]
    assert not errors, "\n".join(errors)
