"""The host codec against the shared protocol vectors (profiling/protocol_vectors/*.json)."""
from __future__ import annotations

import json
import random
import struct
import zlib
from pathlib import Path

import pytest

from ondevice.errors import ProtocolError
from ondevice.profiling import protocol as P

VEC = Path(__file__).resolve().parents[1] / "profiling" / "protocol_vectors"


def _load(name: str) -> list[dict]:
    doc = json.loads((VEC / f"{name}.json").read_text())
    assert doc["protocol_version"] == P.VERSION
    return doc["vectors"]


FRAMES = _load("frames")
STREAMS = _load("stream")


def test_crc_vectors_match_zlib_and_check_value():
    vs = _load("crc")
    assert {v["name"] for v in vs} >= {"check_string"}
    for v in vs:
        data = bytes.fromhex(v["data_hex"])
        assert P.crc32(data) == v["crc32"] == zlib.crc32(data)
    assert P.crc32(b"123456789") == 0xCBF43926


@pytest.mark.parametrize("v", _load("cobs"), ids=lambda v: v["name"])
def test_cobs_vectors(v):
    dec, enc = bytes.fromhex(v["decoded_hex"]), bytes.fromhex(v["encoded_hex"])
    assert P.cobs_encode(dec) == enc
    assert P.cobs_decode(enc) == dec
    assert 0 not in enc
    assert len(enc) <= len(dec) + len(dec) // 254 + 1


def test_cobs_known_examples_from_the_paper():
    # independent of our encoder: the standard examples
    assert P.cobs_encode(b"\x00") == b"\x01\x01"
    assert P.cobs_encode(b"\x11\x22\x00\x33") == b"\x03\x11\x22\x02\x33"
    assert P.cobs_encode(bytes(range(1, 255))) == b"\xff" + bytes(range(1, 255))
    assert P.cobs_encode(bytes(range(2, 256)) + b"\x00") == b"\xff" + bytes(range(2, 256)) + b"\x01\x01"
    # a decoder must accept the non-canonical trailing 0x01 too
    assert P.cobs_decode(b"\xff" + bytes(range(1, 255)) + b"\x01") == bytes(range(1, 255))


def test_cobs_roundtrip_random():
    rng = random.Random(1)
    for _ in range(300):
        n = rng.randrange(0, 1200)
        data = bytes(rng.choice([0, 0, 1, 255, rng.randrange(256)]) for _ in range(n))
        assert P.cobs_decode(P.cobs_encode(data)) == data


@pytest.mark.parametrize("v", FRAMES, ids=lambda v: v["name"])
def test_frame_vector(v):
    wire = bytes.fromhex(v["frame_hex"])
    payload = bytes.fromhex(v["payload_hex"])
    # encode
    assert P.encode_frame(P.Frame(v["type"], v["seq"], payload, v["flags"], v["version"])) == wire
    # decode, checked with plain struct so the header layout is verified independently of the codec
    assert wire.endswith(b"\x00") and wire.count(0) == 1
    body = P.cobs_decode(wire[:-1])
    ver, typ, flags, seq, plen = struct.unpack_from("<BBBHH", body)
    assert (ver, typ, flags, seq, plen) == (v["version"], v["type"], v["flags"], v["seq"], len(payload))
    assert body[7:-4] == payload
    assert struct.unpack("<I", body[-4:])[0] == zlib.crc32(body[:-4])
    f = P.decode_frame(wire)
    assert (f.type, f.seq, f.flags, f.payload) == (v["type"], v["seq"], v["flags"], payload)
    assert f.type_name == v["type_name"]
    # fields -> payload and back
    if v["version"] == P.VERSION:
        fields = dict(v["fields"])
        kinds = dict(P.schema_for(v["type"]))
        args = {k: bytes.fromhex(x) if kinds[k] == "bytes" else x for k, x in fields.items()}
        assert P.pack(v["type"], **args) == payload
        back = P.unpack(f)
        for k, x in fields.items():
            got = back[k]
            got = got.hex() if isinstance(got, bytes) else got
            if k == "tensors":
                for a, b in zip(got, x):
                    assert a["shape"] == b["shape"] and a["dtype"] == b["dtype"] and a["name"] == b["name"]
                    assert (a["scale"] is None) == (b["scale"] is None)
                    if b["scale"] is not None:
                        assert a["scale"] == pytest.approx(b["scale"]) and a["zero_point"] == b["zero_point"]
            else:
                assert got == x, k
    assert len(wire) <= P.MAX_ENCODED


def test_vectors_cover_every_type():
    types = {v["type"] for v in FRAMES}
    for t in P.MsgType:
        assert t in types, t.name
    for t in P.REQUESTS:
        assert P.reply_type(t) in types, t.name
    assert any(len(bytes.fromhex(v["payload_hex"])) == P.MAX_PAYLOAD for v in FRAMES)


@pytest.mark.parametrize("v", STREAMS, ids=lambda v: v["name"])
def test_stream_vector_whole_and_bytewise(v):
    data = bytes.fromhex(v["stream_hex"])
    for split in ("whole", "bytewise", "random"):
        d = P.StreamDecoder()
        if split == "whole":
            frames = d.feed(data)
        elif split == "bytewise":
            frames = [f for i in range(len(data)) for f in d.feed(data[i:i + 1])]
        else:
            rng = random.Random(len(data))
            frames, i = [], 0
            while i < len(data):
                n = rng.randrange(1, 40)
                frames += d.feed(data[i:i + n])
                i += n
        got = [{"type": f.type, "seq": f.seq, "flags": f.flags, "payload_hex": f.payload.hex()} for f in frames]
        assert got == v["frames"], split
        assert d.dropped_total == v["dropped"], split


def test_stream_resync_after_random_garbage():
    rng = random.Random(7)
    good = [P.encode(P.MsgType.PING, i, bytes(rng.randrange(256) for _ in range(rng.randrange(0, 512))))
            for i in range(50)]
    stream = b""
    for g in good:
        stream += bytes(rng.randrange(1, 256) for _ in range(rng.randrange(0, 30))) + b"\x00" + g
    d = P.StreamDecoder()
    frames = d.feed(stream)
    assert [f.seq for f in frames] == list(range(50))


def test_payload_limit_enforced():
    with pytest.raises(ValueError):
        P.encode(P.MsgType.PING, 1, bytes(P.MAX_PAYLOAD + 1))
    assert P.MAX_ENCODED == 527 and P.MAX_FRAME == 523
    assert P.MAX_TIMINGS_PER_FRAME == 62


def test_truncated_payload_is_a_protocol_error():
    f = P.Frame(P.reply_type(P.MsgType.HELLO), 1, b"\x01\x02")
    with pytest.raises(ProtocolError):
        P.unpack(f)


def test_error_table_covers_every_code_with_hint():
    for c in P.ErrorCode:
        msg, hint = P.describe_error(c)
        assert msg and hint
    assert "device-specific" in P.describe_error(0x8001)[0]
    assert "unknown" in P.describe_error(200)[0]


def test_decoder_and_payload_parser_survive_random_damage():
    # mutate valid frames at random: the stream decoder only ever yields CRC-valid frames, and payload
    # parsing fails only with ProtocolError (never IndexError/struct.error/UnicodeError)
    rng = random.Random(11)
    good = [bytes.fromhex(v["frame_hex"]) for v in FRAMES]
    d = P.StreamDecoder()
    decoded = 0
    for _ in range(3000):
        w = bytearray(rng.choice(good))
        for _ in range(rng.randrange(1, 4)):
            op = rng.randrange(3)
            i = rng.randrange(len(w))
            if op == 0:
                w[i] ^= 1 << rng.randrange(8)
            elif op == 1:
                del w[i]
            else:
                w.insert(i, rng.randrange(256))
        for f in d.feed(bytes(w) + b"\x00"):
            decoded += 1
            try:
                P.unpack(f)
            except ProtocolError:
                pass
    assert d.dropped_total > 2500  # CRC-32 catches essentially every damaged frame
    assert decoded < 500


def test_payload_parser_rejects_every_truncation_cleanly():
    for v in FRAMES:
        payload = bytes.fromhex(v["payload_hex"])
        for n in range(len(payload)):
            f = P.Frame(v["type"], v["seq"], payload[:n], v["flags"])
            try:
                P.unpack(f)
            except ProtocolError:
                pass


def test_sim_agent_answers_every_random_request_with_a_frame():
    # the agent as a device under fuzz: any decodable request gets a reply or an ERROR, and it never dies
    from ondevice.profiling.sim_agent import SimAgent
    agent = SimAgent("litert")
    rng = random.Random(5)
    for _ in range(400):
        t = rng.choice(list(P.REQUESTS) + [0x00, 0x42, 0x7E, 0xFF])
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
        if t == P.MsgType.RESET:
            continue
        out = list(agent.handle(P.Frame(t, rng.randrange(65536), payload)))
        assert out, P.type_name(t)
        for w in out:
            f = P.decode_frame(w)
            assert f.type in (P.reply_type(t), P.MsgType.ERROR)
