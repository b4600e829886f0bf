"""Write the shared protocol test vectors (frames.json, stream.json, cobs.json, crc.json).

Run from the repo root: ``python profiling/protocol_vectors/generate.py``. The committed JSON is the contract;
tests/test_protocol.py checks that the host codec reproduces it byte for byte, and the C, Kotlin and Swift agents
check themselves against the same files. Regenerate only together with a PROTOCOL.md change.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ondevice.profiling import protocol as P
from ondevice.profiling.protocol import MsgType as T

HERE = Path(__file__).resolve().parent
MODEL = bytes((i * 37 + 11) & 0xFF for i in range(1000))  # a fake 1000-byte model blob with zeros in it
SHA = hashlib.sha256(MODEL).hexdigest()


def _jsonable(fields: dict) -> dict:
    return {k: (v.hex() if isinstance(v, (bytes, bytearray)) else v) for k, v in fields.items()}


def _vec(vname: str, type_: int, seq: int, flags: int = 0, **fields) -> dict:
    payload = P.pack(type_, **fields)
    wire = P.encode(type_, seq, payload, flags)
    return {"name": vname, "type": type_, "type_name": P.type_name(type_), "flags": flags, "seq": seq,
            "fields": _jsonable(fields), "payload_hex": payload.hex(), "frame_hex": wire.hex()}


def _handshake_and_model_vectors() -> list[dict]:
    """HELLO, PING, RESET, the model upload or built-in select, and MODEL_INFO."""
    R = P.reply_type
    return [
        _vec("hello", T.HELLO, 1, host_version=1, host_max_payload=512),
        _vec("hello_reply_mcu", R(T.HELLO), 1, version=1,
             caps=int(P.Caps.BUILTIN_MODELS | P.Caps.FRONTEND | P.Caps.MEMORY_STATS | P.Caps.RESET
                      | P.Caps.GET_OUTPUT | P.Caps.OP_TIMINGS),
             max_payload=512, rx_window=1, max_runs=128, timer_units=(1 << P.TimerUnit.INSTRUCTIONS)
             | (1 << P.TimerUnit.US), default_unit=int(P.TimerUnit.INSTRUCTIONS), clock_hz=25_000_000,
             ram_bytes=4 * 1024 * 1024, flash_bytes=4 * 1024 * 1024, builtin_models=1, boot_id=0,
             device="od-mcu", runtime="od-mcu", board="qemu-mps2-an386"),
        _vec("hello_reply_phone", R(T.HELLO), 1, version=1,
             caps=int(P.Caps.LOAD_MODEL | P.Caps.MEMORY_STATS | P.Caps.GET_OUTPUT | P.Caps.LOG | P.Caps.RESET),
             max_payload=512, rx_window=8, max_runs=10000, timer_units=(1 << P.TimerUnit.US) | (1 << P.TimerUnit.NS),
             default_unit=int(P.TimerUnit.US), clock_hz=0, ram_bytes=0xFFFFFFFF, flash_bytes=0xFFFFFFFF,
             builtin_models=0, boot_id=0x5EED1234, device="Pixel 8", runtime="litert", board="android-generic"),
        _vec("ping_empty", T.PING, 2),
        _vec("ping_reply_empty", R(T.PING), 2),
        _vec("ping_zeros", T.PING, 3, data=b"\x00\x00\x01\x00"),
        _vec("ping_reply_zeros", R(T.PING), 3, data=b"\x00\x00\x01\x00"),
        _vec("ping_max_payload_with_254_run", T.PING, 4, data=bytes([0x00]) + bytes([0xAB]) * 300
             + bytes([0x00]) + bytes([0x5A]) * 210),
        _vec("reset", T.RESET, 5),
        _vec("reset_reply", R(T.RESET), 5),
        _vec("load_model_begin", T.LOAD_MODEL_BEGIN, 6, total_bytes=len(MODEL), format=int(P.ModelFormat.TFLITE),
             sha256=SHA, name="mitsis_tflite_int8"),
        _vec("load_model_begin_reply", R(T.LOAD_MODEL_BEGIN), 6),
        _vec("load_model_chunk_first", T.LOAD_MODEL_CHUNK, 7, offset=0, data=MODEL[:508]),
        _vec("load_model_chunk_reply_first", R(T.LOAD_MODEL_CHUNK), 7, received=508),
        _vec("load_model_chunk_last", T.LOAD_MODEL_CHUNK, 8, offset=508, data=MODEL[508:]),
        _vec("load_model_chunk_reply_last", R(T.LOAD_MODEL_CHUNK), 8, received=1000),
        _vec("load_model_end", T.LOAD_MODEL_END, 9),
        _vec("load_model_end_reply", R(T.LOAD_MODEL_END), 9),
        _vec("select_builtin_by_index", T.SELECT_BUILTIN_MODEL, 10, index=0, name=""),
        _vec("select_builtin_by_name", T.SELECT_BUILTIN_MODEL, 11, index=0xFF, name="mitsis"),
        _vec("select_builtin_reply", R(T.SELECT_BUILTIN_MODEL), 11, index=0, name="mitsis"),
        _vec("model_info", T.MODEL_INFO, 12),
        _vec("model_info_reply", R(T.MODEL_INFO), 12, sha256=SHA, model_bytes=1000, arena_bytes=22912,
             name="mitsis", n_inputs=1, n_outputs=2,
             tensors=[{"name": "features", "shape": [1, 1, 49, 40], "dtype": "int8", "scale": 0.5,
                       "zero_point": -128},
                      {"name": "emotion", "shape": [1, 4], "dtype": "int8", "scale": 0.00390625, "zero_point": -128},
                      {"name": "keyword", "shape": [1, 12], "dtype": "float32", "scale": None, "zero_point": None}]),
    ]


def _run_vectors() -> list[dict]:
    """Mode and inputs, the timed runs, and what is read back afterwards (outputs, memory, per-op timings)."""
    R = P.reply_type
    timings = [1523411 + 97 * i for i in range(62)]
    return [
        _vec("set_mode_frontend_model", T.SET_MODE, 13, mode=int(P.Mode.FRONTEND_MODEL)),
        _vec("set_mode_reply", R(T.SET_MODE), 13, mode=int(P.Mode.FRONTEND_MODEL)),
        _vec("set_input_chunk", T.SET_INPUT, 14, index=0, total=1960, offset=1500, data=bytes(i & 0xFF for i in range(460))),
        _vec("set_input_reply", R(T.SET_INPUT), 14, index=0, end=1960),
        _vec("set_input_audio", T.SET_INPUT, 15, index=P.AUDIO_INDEX, total=32000, offset=0,
             data=b"\x00\x00\xff\x7f\x00\x80\x01\x00"),
        _vec("run", T.RUN, 16, runs=100, warmup=10, unit=P.UNIT_DEFAULT),
        _vec("run_reply_progress_after_warmup", R(T.RUN), 16, flags=P.FLAG_MORE, unit=int(P.TimerUnit.INSTRUCTIONS),
             total_runs=100, first_index=0, count=0, timings=[]),
        _vec("run_reply_full_frame", R(T.RUN), 16, flags=P.FLAG_MORE, unit=int(P.TimerUnit.INSTRUCTIONS),
             total_runs=100, first_index=0, count=62, timings=timings),
        _vec("run_reply_last", R(T.RUN), 16, unit=int(P.TimerUnit.INSTRUCTIONS), total_runs=100, first_index=62,
             count=38, timings=[7_700_000 + i for i in range(38)]),
        _vec("run_reply_us_big", R(T.RUN), 17, unit=int(P.TimerUnit.US), total_runs=1, first_index=0, count=1,
             timings=[0x1_0000_0001]),
        _vec("get_timings", T.GET_TIMINGS, 18, first_index=62, count=38),
        _vec("get_output_all", T.GET_OUTPUT, 19, index=0, offset=0, length=0xFFFFFFFF),
        _vec("get_output_reply", R(T.GET_OUTPUT), 19, index=0, total=4, offset=0, data=b"\x80\x7f\x00\x01"),
        _vec("get_output_reply_more", R(T.GET_OUTPUT), 20, flags=P.FLAG_MORE, index=0xFF, total=3920, offset=0,
             data=bytes([0]) * 503),
        _vec("get_memory", T.GET_MEMORY, 21),
        _vec("get_memory_reply", R(T.GET_MEMORY), 21, peak_ram_bytes=31744, arena_total_bytes=24576,
             arena_used_bytes=22912, stack_total_bytes=8192, stack_high_water_bytes=1404, flash_used_bytes=118000,
             model_bytes=61000, heap_peak_bytes=P.UNKNOWN_U32),
        _vec("get_op_timings", T.GET_OP_TIMINGS, 22, first_op=0),
        _vec("get_op_timings_reply", R(T.GET_OP_TIMINGS), 22, unit=int(P.TimerUnit.INSTRUCTIONS), total_ops=3,
             first_op=0, count=3, ops=[{"time": 1200000, "name": "CONV_2D"},
                                       {"time": 350000, "name": "DEPTHWISE_CONV_2D"},
                                       {"time": 9000, "name": "SOFTMAX"}]),
    ]


def _device_vectors() -> list[dict]:
    """What a device sends unasked (BOOT, LOG) and its ERROR frames."""
    return [
        _vec("boot", T.BOOT, 0, reset_reason=int(P.ResetReason.POWER_ON), boot_id=0,
             banner=b"ondevice od-mcu 0.1 qemu-mps2-an386"),
        _vec("boot_after_watchdog", T.BOOT, 0, reset_reason=int(P.ResetReason.WATCHDOG), boot_id=7, banner=b""),
        _vec("log", T.LOG, 3, level=2, message=b"arena 22912 bytes"),
        _vec("error_no_model", T.ERROR, 16, code=int(P.ErrorCode.NO_MODEL), detail=0, message=b"no model"),
        _vec("error_bad_offset", T.ERROR, 8, code=int(P.ErrorCode.BAD_OFFSET), detail=508, message=b""),
        _vec("error_sha_mismatch", T.ERROR, 9, code=int(P.ErrorCode.SHA_MISMATCH), detail=0,
             message=b"sha256 mismatch"),
        _vec("error_unknown_type", T.ERROR, 23, code=int(P.ErrorCode.UNKNOWN_TYPE), detail=0x55, message=b""),
    ]


def frames() -> list[dict]:
    R = P.reply_type
    v = _handshake_and_model_vectors() + _run_vectors() + _device_vectors()
    # a frame with a newer version number: still decodes; the agent answers UNSUPPORTED_VERSION
    body = P.Frame(0x01, 24, P.pack(T.HELLO, host_version=2, host_max_payload=512), 0, version=2)
    v.append({"name": "hello_version_2", "type": 1, "type_name": "HELLO", "flags": 0, "seq": 24, "version": 2,
              "fields": {"host_version": 2, "host_max_payload": 512},
              "payload_hex": body.payload.hex(), "frame_hex": P.encode_frame(body).hex()})
    v.append(_vec("get_timings_reply", R(T.GET_TIMINGS), 18, unit=int(P.TimerUnit.INSTRUCTIONS), total_runs=100,
                  first_index=62, count=2, timings=[7_700_000, 7_700_001]))
    covered = {x["type"] for x in v}
    missing = [t for t in list(T) + [R(t) for t in P.REQUESTS] if t not in covered]
    assert not missing, f"vectors miss types {missing}"
    for x in v:
        x.setdefault("version", 1)
    return v


def stream() -> list[dict]:
    a = P.encode(T.PING, 1, b"\x01\x00\x02")
    b = P.encode(P.reply_type(T.HELLO), 1, b"")
    boot = P.encode(T.BOOT, 0, P.pack(T.BOOT, reset_reason=0, boot_id=0, banner=b"hi"))
    bad_crc = bytearray(P.cobs_encode(P.frame_body(P.Frame(T.PING, 9, b"abc"))))
    bad_crc[-2] ^= 0x01  # flip a bit in the CRC (encoded bytes stay non-zero)
    bad_crc = bytes(bad_crc) + b"\x00"
    # a header that claims 5 payload bytes but carries 3, with a valid CRC
    body = P.HEADER.pack(1, T.PING, 0, 10, 5) + b"abc"
    bad_len = P.cobs_encode(body + (P.crc32(body)).to_bytes(4, "little")) + b"\x00"
    garbage = b"QEMU 7.2 monitor - type 'help'\r\nboot...\r\n"
    out = []

    def s(name: str, desc: str, data: bytes, frames_: list[bytes], dropped: int):
        fs = []
        for w in frames_:
            f = P.decode_frame(w)
            fs.append({"type": f.type, "seq": f.seq, "flags": f.flags, "payload_hex": f.payload.hex()})
        out.append({"name": name, "description": desc, "stream_hex": data.hex(), "frames": fs, "dropped": dropped})

    s("two_frames", "two frames back to back", a + b, [a, b], 0)
    s("leading_delimiters", "empty frames (repeated 0x00) are ignored, not counted", b"\x00\x00" + a + b"\x00" + b,
      [a, b], 0)
    s("garbage_then_delimited_frame", "ASCII garbage, then 0x00, then a frame: garbage dropped, frame kept",
      garbage + b"\x00" + boot, [boot], 1)
    s("garbage_glued_to_frame", "garbage with no 0x00 before the frame corrupts that frame: both are dropped; "
      "this is why senders put a 0x00 before a frame after any silence", garbage + boot + a, [a], 1)
    s("bad_crc_then_good", "a frame with a flipped CRC bit is dropped; the next frame decodes", bad_crc + a, [a], 1)
    s("truncated_then_good", "a frame cut short by a reset, then a frame", a[:6] + b"\x00" + a, [a], 1)
    s("oversize_then_good", "600 non-zero bytes (longer than any frame) are skipped up to the next 0x00",
      bytes([0x41]) * 600 + b"\x00" + b, [b], 1)
    s("bad_length_then_good", "payload_len disagrees with the frame size: dropped", bad_len + b, [b], 1)
    s("zero_in_cobs_block", "a COBS code pointing past the end of the frame: dropped", b"\x05\x01\x02\x00" + a,
      [a], 1)
    return out


def cobs() -> list[dict]:
    cases = [
        ("empty", b""),
        ("one_zero", b"\x00"),
        ("two_zeros", b"\x00\x00"),
        ("zero_inside", b"\x11\x22\x00\x33"),
        ("no_zero", b"\x11\x22\x33\x44"),
        ("trailing_zero", b"\x11\x00\x00\x00"),
        ("run_254", bytes(range(1, 255))),
        ("zero_then_run_254", bytes(range(0, 255))),
        ("run_255", bytes(range(1, 256))),
        ("run_254_then_zero", bytes(range(2, 256)) + b"\x00"),
        ("run_253_then_zero_one", bytes(range(3, 256)) + b"\x00\x01"),
        ("run_508", bytes([0xAB]) * 508),
        ("max_frame_no_zero", bytes([0x5A]) * P.MAX_FRAME),
    ]
    return [{"name": n, "decoded_hex": d.hex(), "encoded_hex": P.cobs_encode(d).hex()} for n, d in cases]


def crc() -> list[dict]:
    cases = [("check_string", b"123456789"), ("empty", b""), ("hello_header", P.HEADER.pack(1, 1, 0, 1, 3)),
             ("zeros_16", bytes(16))]
    return [{"name": n, "data_hex": d.hex(), "crc32": P.crc32(d), "crc32_hex": f"{P.crc32(d):08x}"}
            for n, d in cases]


def main() -> None:
    meta = {"protocol_version": P.VERSION, "spec": "profiling/PROTOCOL.md"}
    for name, fn in [("frames", frames), ("stream", stream), ("cobs", cobs), ("crc", crc)]:
        doc = dict(meta, vectors=fn())
        (HERE / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
        print(f"{name}.json: {len(doc['vectors'])} vectors")


if __name__ == "__main__":
    main()
