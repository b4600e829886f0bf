"""The firmware's portable core built for the host: the C codec against the shared protocol vectors, the C audio
frontend bit-exact with ondevice.features, and the agent driven by the real host session over a pipe."""
from __future__ import annotations

import base64
import json
import struct

import numpy as np
import pytest

from _firmware_support import REPO, HostTest, PipeTransport, make, fixture_model_reference
from conftest import require_tool
from ondevice.errors import DeviceError
from ondevice.profiling import protocol as P
from ondevice.profiling.session import DeviceSession

VECTORS = REPO / "profiling" / "protocol_vectors"


def _vectors(name: str) -> list[dict]:
    return json.loads((VECTORS / f"{name}.json").read_text())["vectors"]


@pytest.fixture(scope="session")
def host_build(tmp_path_factory):
    require_tool("cc")
    out = tmp_path_factory.mktemp("fw_host")
    make("host", "hosttest", HOST_O=str(out))
    return out


@pytest.fixture(scope="session")
def ht(host_build):
    h = HostTest(host_build / "od_hosttest")
    yield h
    h.close()


@pytest.fixture()
def agent(host_build):
    t = PipeTransport(host_build / "od_agent")
    yield t
    t.close()


# ---- codec vs the shared vectors ------------------------------------------------------------------------------

def test_crc_vectors(ht):
    vs = _vectors("crc")
    assert vs
    for v in vs:
        assert int(ht.one(f"crc {v['data_hex']}")) == v["crc32"], v["name"]


def test_cobs_vectors(ht):
    vs = _vectors("cobs")
    assert len(vs) >= 10
    for v in vs:
        assert ht.one(f"cobs_enc {v['decoded_hex']}") == v["encoded_hex"], v["name"]
        assert ht.one(f"cobs_dec {v['encoded_hex']}") == v["decoded_hex"], v["name"]
    assert ht.one("cobs_dec 0500") == "error"  # a code pointing past the end


def test_frame_vectors_encode_and_decode(ht):
    vs = _vectors("frames")
    types = {v["type"] for v in vs}
    assert {int(t) for t in P.MsgType} <= types | {t | P.REPLY_BIT for t in types}
    for v in vs:
        assert ht.one(f"encode {v['version']} {v['type']} {v['flags']} {v['seq']} {v['payload_hex']}") == v["frame_hex"], v["name"]
        lines = ht.ask(f"stream {v['frame_hex']}")
        assert lines == [f"frame {v['version']} {v['type']} {v['seq']} {v['flags']} {v['payload_hex']}", "dropped 0"], v["name"]


def test_stream_vectors_resync_and_drop_counts(ht):
    vs = _vectors("stream")
    assert len(vs) >= 8
    for v in vs:
        lines = ht.ask(f"stream {v['stream_hex']}")
        want = [f"frame {f.get('version', 1)} {f['type']} {f['seq']} {f['flags']} {f['payload_hex']}"
                for f in v["frames"]]
        assert lines == want + [f"dropped {v['dropped']}"], v["name"]


def _flatten(schema, fields) -> list[tuple[str, str]]:
    """A vector's named fields as (C kind, value) in wire order, from the normative schema table."""
    out = []
    simple = {"u8": "u8", "u16": "u16", "u32": "u32", "u64": "u64", "i32": "i32"}
    for name, kind in schema:
        v = fields.get(name)
        if kind in simple:
            out.append((simple[kind], str(v)))
        elif kind == "f32":
            out.append(("f32x", struct.pack(">f", v).hex()))
        elif kind == "sha256":
            out.append(("sha", v))
        elif kind == "str8":
            out.append(("str8", (v or "").encode().hex()))
        elif kind == "bytes":
            out.append(("hex", v or ""))
        elif kind == "u64[]":
            out += [("u64", str(t)) for t in v]
        elif kind == "tensors":
            for t in v:
                out += [("u8", str(P.DTYPE_CODES[t["dtype"]])), ("u8", str(len(t["shape"])))]
                out += [("u32", str(d)) for d in t["shape"]]
                out += [("f32x", struct.pack(">f", t["scale"] or 0.0).hex()), ("i32", str(t["zero_point"] or 0)),
                        ("str8", t["name"].encode().hex())]
        elif kind == "ops":
            for op in v:
                out += [("u64", str(op["time"])), ("str8", op["name"].encode().hex())]
        else:
            raise AssertionError(kind)
    return out


def test_payload_vectors_pack_and_unpack(ht):
    """The C payload writer and reader reproduce every vector's payload from its fields, and back."""
    n = 0
    for v in _vectors("frames"):
        items = _flatten(P.schema_for(v["type"]), v["fields"])
        assert ht.one("pack " + " ".join(f"{k}:{val}" for k, val in items)) == v["payload_hex"], v["name"]
        kinds = [("rest" if k == "hex" else k) for k, _ in items]
        got = ht.one(f"unpack {v['payload_hex'] or '-'} " + " ".join(kinds)).split()
        assert got[-1] == "ok", v["name"]
        for (k, val), g in zip(items, got):
            want = {"str8": "s" + val, "hex": "h" + val}.get(k, val)
            assert g == want, (v["name"], k)
        n += 1
    assert n == len(_vectors("frames")) >= 40


def test_reader_flags_short_payloads(ht):
    assert ht.one("unpack 0102 u32").endswith("short")
    assert ht.one("unpack 05616263 str8").endswith("short")  # str8 longer than the payload


# ---- the audio frontend -------------------------------------------------------------------------------------------

def test_frontend_bit_exact_on_shared_vectors(ht):
    from ondevice.features.twins import read_vector
    paths = sorted((REPO / "tests" / "vectors" / "frontend").glob("0*.json"))
    assert len(paths) >= 3
    for p in paths:
        wav, feats, _ = read_vector(p)
        got = np.frombuffer(bytes.fromhex(ht.one(f"fe {wav.astype('<i2').tobytes().hex()}")), "<u2")
        assert np.array_equal(got.reshape(feats.shape), feats), p.name


def test_frontend_bit_exact_on_fresh_audio(ht):
    """Signals the committed vectors do not hold: random level noise, a clipped tone, odd lengths."""
    from ondevice.features import compute_features
    rng = np.random.default_rng(7)
    t = np.arange(16000) / 16000
    clips = [np.clip(rng.normal(0, 3000, 16000), -32768, 32767).astype(np.int16),
             np.clip(40000 * np.sin(2 * np.pi * 1234.5 * t), -32768, 32767).astype(np.int16),
             rng.integers(-32768, 32768, 480 + 320 * 3 + 17).astype(np.int16),
             np.zeros(16000, np.int16)]
    for k, wav in enumerate(clips):
        want = compute_features(wav)
        got = np.frombuffer(bytes.fromhex(ht.one(f"fe {wav.astype('<i2').tobytes().hex()}")), "<u2")
        assert np.array_equal(got.reshape(want.shape), want), k


def test_feature_quantizer_matches_python(ht):
    """The C multiplier is derived exactly from the float32 scale, like ondevice.features.quant_multiplier."""
    from ondevice.features import quant_multiplier, quantize_features
    rng = np.random.default_rng(3)
    scales = [np.float32(s) for s in (0.05, 1.0, 0.5, 2.0 ** -8, 0.0390625, 3.0e-5, 17.25)]
    scales += [np.float32(x) for x in 10.0 ** rng.uniform(-5, 2.5, 200)]
    feats = rng.integers(0, 4000, 1960).astype(np.uint16)
    for s in scales:
        bits = struct.pack("<f", s)[::-1].hex()
        m, sh = quant_multiplier(float(s))
        assert ht.one(f"qm {bits}") == f"{m} {sh}", float(s)
    for s in scales[:20]:
        zp = int(rng.integers(-128, 128))
        bits = struct.pack("<f", s)[::-1].hex()
        got = np.frombuffer(bytes.fromhex(ht.one(f"fq {bits} {zp} {feats.astype('<u2').tobytes().hex()}")), np.int8)
        assert np.array_equal(got, quantize_features(feats, float(s), zp)), float(s)
    assert ht.one("qm 00000000") == "none" and ht.one("qm bf800000") == "none"  # 0 and -1 are not scales


# ---- the agent, driven by the host profiler's session --------------------------------------------------------------

def _wait_boot(t) -> P.Frame:
    dec = P.StreamDecoder()
    for _ in range(50):
        frames = dec.feed(t.read(4096, 0.2))
        if frames:
            return frames[0]
    raise AssertionError("no BOOT frame")


def test_agent_boot_hello_and_model_info(agent):
    boot = _wait_boot(agent)
    assert boot.type == P.MsgType.BOOT
    b = P.unpack(boot)
    assert b["reset_reason"] == P.ResetReason.POWER_ON and b["banner"].startswith(b"ondevice od-mcu")
    s = DeviceSession(agent, timeout=5)
    info = s.hello()
    assert info.runtime == "od-mcu" and info.board == "host" and info.units() == ["ns"]
    assert info.has(P.Caps.BUILTIN_MODELS) and info.has(P.Caps.FRONTEND) and not info.has(P.Caps.LOAD_MODEL)
    assert s.select_builtin(name="testmodel")["name"] == "testmodel"
    mi = s.model_info()
    assert mi["name"] == "testmodel" and mi["n_inputs"] == 1 and mi["n_outputs"] == 1
    assert mi["tensors"][0]["shape"] == [1, 16] and mi["tensors"][1]["zero_point"] == 5
    with pytest.raises(DeviceError) as e:
        s.select_builtin(name="mitsis")
    assert e.value.code == P.ErrorCode.BAD_INDEX


def test_agent_runs_model_and_returns_exact_outputs(agent):
    _wait_boot(agent)
    s = DeviceSession(agent, timeout=5)
    s.hello()
    s.select_builtin(index=0)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.integers(-128, 128, 16).astype(np.int8)
        s.set_input(0, x.tobytes())
        unit, ts = s.run(5, 1)
        assert unit == "ns" and len(ts) == 5 and all(t > 0 for t in ts)
        out = np.frombuffer(s.get_output(0), np.int8)
        assert np.array_equal(out, fixture_model_reference(x))
    unit, ops = s.get_op_timings()
    assert [o["name"] for o in ops] == ["FULLY_CONNECTED", "ADD"]
    mem = s.get_memory()
    assert mem["arena_total_bytes"] == 32 and mem["heap_peak_bytes"] == 0


def test_agent_dedups_retried_run_and_reports_errors(agent):
    _wait_boot(agent)
    agent.write(b"\x00" + P.message(P.MsgType.HELLO, 1, host_version=1, host_max_payload=128))
    dec = P.StreamDecoder()

    def replies(n):
        got = []
        while len(got) < n:
            got += dec.feed(agent.read(4096, 2.0))
        return got

    hello = P.unpack(replies(1)[0])
    assert hello["max_payload"] == 128  # negotiated down to what the host takes
    run = P.message(P.MsgType.RUN, 7, runs=40, warmup=0, unit=0xFF)
    agent.write(run)
    first = replies(2)  # the progress frame, then timings in frames of (128 - 10) // 8 = 14
    while first[-1].more:
        first += replies(1)
    timings = [t for f in first for t in P.unpack(f)["timings"]]
    assert len(timings) == 40 and all(len(P.unpack(f)["timings"]) <= 14 for f in first)
    agent.write(run)  # same seq: a retry, so the device re-streams and does not run again
    again = replies(1)
    while again[-1].more:
        again += replies(1)
    assert [t for f in again for t in P.unpack(f)["timings"]] == timings
    # garbage, a bad CRC and an unknown type: the first two are dropped silently, the third gets ERROR
    bad = bytearray(P.message(P.MsgType.PING, 9, data=b"x"))
    bad[3] ^= 0xFF
    agent.write(b"\x13\x37garbage\x00" + bytes(bad) + P.encode(0x55, 10) + P.message(P.MsgType.PING, 11, data=b"ok"))
    err, pong = replies(2)
    assert err.type == P.MsgType.ERROR and err.seq == 10
    e = P.unpack(err)
    assert e["code"] == P.ErrorCode.UNKNOWN_TYPE and e["detail"] == 0x55
    assert pong.seq == 11 and P.unpack(pong)["data"] == b"ok"
    agent.write(P.message(P.MsgType.SET_INPUT, 12, index=0, total=17, offset=0, data=b"\x01"))
    assert P.unpack(replies(1)[0])["code"] == P.ErrorCode.INVALID_INPUT_SIZE
    agent.write(P.encode_frame(P.Frame(P.MsgType.PING, 13, b"", 0, version=2)))
    e = P.unpack(replies(1)[0])
    assert e["code"] == P.ErrorCode.UNSUPPORTED_VERSION and e["detail"] == 1


def test_agent_frontend_modes_match_python(agent):
    """Mode 2 (frontend only) returns the feature map; the host build computes it bit-exactly."""
    from ondevice.features import compute_features
    from ondevice.features.twins import read_vector
    wav, feats, _ = read_vector(sorted((REPO / "tests" / "vectors" / "frontend").glob("0*.json"))[0])
    assert np.array_equal(compute_features(wav), feats)
    _wait_boot(agent)
    s = DeviceSession(agent, timeout=5)
    s.hello()
    s.set_mode(P.Mode.FRONTEND)
    s.set_input(P.AUDIO_INDEX, wav.astype("<i2").tobytes())
    unit, ts = s.run(2, 0)
    assert len(ts) == 2
    got = np.frombuffer(s.get_output(P.AUDIO_INDEX), "<u2").reshape(feats.shape)
    assert np.array_equal(got, feats)
    with pytest.raises(DeviceError) as e:  # the fixture model's input is not a 49x40 feature map
        s.set_mode(P.Mode.FRONTEND_MODEL)
        s.run(1, 0)
    assert e.value.code in (P.ErrorCode.UNSUPPORTED, P.ErrorCode.INVALID_INPUT_SIZE)
