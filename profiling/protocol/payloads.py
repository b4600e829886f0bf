"""Message payloads (PROTOCOL.md): the field schemas of every message (``SCHEMAS``), pack/unpack, and the
HELLO reply as :class:`DeviceInfo`."""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Iterable

from ondevice.errors import ProtocolError
from ondevice.profiling.protocol.codes import (MAX_PAYLOAD, REPLY_BIT, MsgType, Caps, TimerUnit,
                                               UNIT_NAMES, DTYPES, DTYPE_CODES, DTYPE_SIZES)
from ondevice.profiling.protocol.framing import Frame, encode, type_name


# ---------------------------------------------------------------------------------------------------------------
# Payload schemas. Kinds: u8 u16 u32 u64 i32 f32 sha256 (32 raw bytes, hex in Python) str8 (u8 length + UTF-8)
# bytes (the rest of the payload), u64[] (the rest, as u64 values), and two structured lists.

_FMT = {"u8": "<B", "u16": "<H", "u32": "<I", "u64": "<Q", "i32": "<i", "f32": "<f"}

_RUN_DATA = [("unit", "u8"), ("total_runs", "u32"), ("first_index", "u32"), ("count", "u8"), ("timings", "u64[]")]

# (type, is_reply) -> [(field, kind)]
SCHEMAS: dict[tuple[int, bool], list[tuple[str, str]]] = {
    (MsgType.HELLO, False): [("host_version", "u8"), ("host_max_payload", "u16")],
    (MsgType.HELLO, True): [("version", "u8"), ("caps", "u32"), ("max_payload", "u16"), ("rx_window", "u8"),
                            ("max_runs", "u16"), ("timer_units", "u8"), ("default_unit", "u8"),
                            ("clock_hz", "u32"), ("ram_bytes", "u32"), ("flash_bytes", "u32"),
                            ("builtin_models", "u8"), ("boot_id", "u32"), ("device", "str8"), ("runtime", "str8"),
                            ("board", "str8")],
    (MsgType.PING, False): [("data", "bytes")],
    (MsgType.PING, True): [("data", "bytes")],
    (MsgType.RESET, False): [],
    (MsgType.RESET, True): [],
    (MsgType.LOAD_MODEL_BEGIN, False): [("total_bytes", "u32"), ("format", "u8"), ("sha256", "sha256"),
                                        ("name", "str8")],
    (MsgType.LOAD_MODEL_BEGIN, True): [],
    (MsgType.LOAD_MODEL_CHUNK, False): [("offset", "u32"), ("data", "bytes")],
    (MsgType.LOAD_MODEL_CHUNK, True): [("received", "u32")],
    (MsgType.LOAD_MODEL_END, False): [],
    (MsgType.LOAD_MODEL_END, True): [],
    (MsgType.SELECT_BUILTIN_MODEL, False): [("index", "u8"), ("name", "str8")],
    (MsgType.SELECT_BUILTIN_MODEL, True): [("index", "u8"), ("name", "str8")],
    (MsgType.MODEL_INFO, False): [],
    (MsgType.MODEL_INFO, True): [("sha256", "sha256"), ("model_bytes", "u32"), ("arena_bytes", "u32"),
                                 ("name", "str8"), ("n_inputs", "u8"), ("n_outputs", "u8"), ("tensors", "tensors")],
    (MsgType.SET_MODE, False): [("mode", "u8")],
    (MsgType.SET_MODE, True): [("mode", "u8")],
    (MsgType.SET_INPUT, False): [("index", "u8"), ("total", "u32"), ("offset", "u32"), ("data", "bytes")],
    (MsgType.SET_INPUT, True): [("index", "u8"), ("end", "u32")],
    (MsgType.RUN, False): [("runs", "u32"), ("warmup", "u32"), ("unit", "u8")],
    (MsgType.RUN, True): _RUN_DATA,
    (MsgType.GET_TIMINGS, False): [("first_index", "u32"), ("count", "u32")],
    (MsgType.GET_TIMINGS, True): _RUN_DATA,
    (MsgType.GET_OUTPUT, False): [("index", "u8"), ("offset", "u32"), ("length", "u32")],
    (MsgType.GET_OUTPUT, True): [("index", "u8"), ("total", "u32"), ("offset", "u32"), ("data", "bytes")],
    (MsgType.GET_MEMORY, False): [],
    (MsgType.GET_MEMORY, True): [("peak_ram_bytes", "u32"), ("arena_total_bytes", "u32"),
                                 ("arena_used_bytes", "u32"), ("stack_total_bytes", "u32"),
                                 ("stack_high_water_bytes", "u32"), ("flash_used_bytes", "u32"),
                                 ("model_bytes", "u32"), ("heap_peak_bytes", "u32")],
    (MsgType.GET_OP_TIMINGS, False): [("first_op", "u16")],
    (MsgType.GET_OP_TIMINGS, True): [("unit", "u8"), ("total_ops", "u16"), ("first_op", "u16"), ("count", "u8"),
                                     ("ops", "ops")],
    (MsgType.BOOT, False): [("reset_reason", "u8"), ("boot_id", "u32"), ("banner", "bytes")],
    (MsgType.LOG, False): [("level", "u8"), ("message", "bytes")],
    (MsgType.ERROR, False): [("code", "u16"), ("detail", "u32"), ("message", "bytes")],
}

RUN_DATA_FIXED = 10  # bytes before the timings in a RUN / GET_TIMINGS reply
MAX_TIMINGS_PER_FRAME = (MAX_PAYLOAD - RUN_DATA_FIXED) // 8  # 62


def schema_for(type_: int) -> list[tuple[str, str]]:
    is_reply = bool(type_ & REPLY_BIT) and type_ != MsgType.ERROR
    key = (type_ & 0x7F, is_reply) if is_reply else (type_, False)
    try:
        return SCHEMAS[key]
    except KeyError:
        raise ProtocolError(f"no payload schema for frame type {type_name(type_)}",
                            "the device may speak a newer protocol; update ondevice") from None


def _pack_str8(s: str) -> bytes:
    b = s.encode("utf-8")
    if len(b) > 255:
        raise ValueError(f"string of {len(b)} bytes does not fit a str8")
    return bytes([len(b)]) + b


def pack_fields(schema: list[tuple[str, str]], values: dict[str, Any]) -> bytes:
    out = bytearray()
    for name, kind in schema:
        v = values.get(name)
        if kind in _FMT:
            out += struct.pack(_FMT[kind], v if v is not None else 0)
        elif kind == "sha256":
            raw = bytes.fromhex(v) if isinstance(v, str) else bytes(v or b"\x00" * 32)
            if len(raw) != 32:
                raise ValueError("sha256 must be 32 bytes")
            out += raw
        elif kind == "str8":
            out += _pack_str8(v or "")
        elif kind == "bytes":
            out += v.encode() if isinstance(v, str) else bytes(v or b"")
        elif kind == "u64[]":
            out += struct.pack(f"<{len(v)}Q", *v)
        elif kind == "tensors":
            for t in v:
                dims = list(t["shape"])
                code = t["dtype"] if isinstance(t["dtype"], int) else DTYPE_CODES[t["dtype"]]  # ints: test frames
                out += struct.pack("<BB", code, len(dims))
                out += struct.pack(f"<{len(dims)}I", *dims)
                scale = t.get("scale")
                out += struct.pack("<fi", 0.0 if scale is None else scale, t.get("zero_point") or 0)
                out += _pack_str8(t.get("name", ""))
        elif kind == "ops":
            for op in v:
                out += struct.pack("<Q", op["time"]) + _pack_str8(op["name"])
        else:  # pragma: no cover - schema typo
            raise AssertionError(kind)
    return bytes(out)


def unpack_fields(schema: list[tuple[str, str]], payload: bytes) -> dict[str, Any]:
    """Parse a payload; trailing bytes beyond the schema are ignored (fields are only ever appended)."""
    vals: dict[str, Any] = {}
    i = 0
    p = payload
    try:
        for name, kind in schema:
            if kind in _FMT:
                (vals[name],) = struct.unpack_from(_FMT[kind], p, i)
                i += struct.calcsize(_FMT[kind])
            elif kind == "sha256":
                if i + 32 > len(p):
                    raise struct.error("short sha256")
                vals[name] = p[i:i + 32].hex()
                i += 32
            elif kind == "str8":
                n = p[i]
                if i + 1 + n > len(p):
                    raise struct.error("short str8")
                vals[name] = p[i + 1:i + 1 + n].decode("utf-8", "replace")
                i += 1 + n
            elif kind == "bytes":
                vals[name] = bytes(p[i:])
                i = len(p)
            elif kind == "u64[]":
                n = vals.get("count", (len(p) - i) // 8)
                vals[name] = list(struct.unpack_from(f"<{n}Q", p, i))
                i += 8 * n
            elif kind == "tensors":
                ts = []
                for k in range(vals["n_inputs"] + vals["n_outputs"]):
                    code, ndim = struct.unpack_from("<BB", p, i)
                    i += 2
                    dims = list(struct.unpack_from(f"<{ndim}I", p, i))
                    i += 4 * ndim
                    scale, zp = struct.unpack_from("<fi", p, i)
                    i += 8
                    n = p[i]
                    tname = p[i + 1:i + 1 + n].decode("utf-8", "replace")
                    i += 1 + n
                    ts.append({"name": tname, "shape": dims, "dtype": DTYPES.get(code, code),
                               "scale": None if scale == 0.0 else scale,
                               "zero_point": None if scale == 0.0 else zp})
                vals[name] = ts
            elif kind == "ops":
                ops = []
                for k in range(vals["count"]):
                    (t,) = struct.unpack_from("<Q", p, i)
                    n = p[i + 8]
                    ops.append({"time": t, "name": p[i + 9:i + 9 + n].decode("utf-8", "replace")})
                    i += 9 + n
                vals[name] = ops
    except (struct.error, IndexError) as e:
        raise ProtocolError(f"malformed {schema and schema[0][0]}... payload ({len(p)} bytes): {e}",
                            "host and device protocol versions may disagree") from None
    return vals


def pack(type_: int, **values: Any) -> bytes:
    """Payload bytes for a message type (use ``reply_type(T)`` for replies)."""
    return pack_fields(schema_for(type_), values)


def unpack(frame: Frame) -> dict[str, Any]:
    """Decode a frame's payload into a dict of named fields."""
    return unpack_fields(schema_for(frame.type), frame.payload)


def message(type_: int, seq: int, flags: int = 0, **values: Any) -> bytes:
    """Wire bytes of one message built from named fields."""
    return encode(type_, seq, pack(type_, **values), flags)


def tensor_nbytes(t: dict) -> int:
    n = DTYPE_SIZES[t["dtype"]]
    for d in t["shape"]:
        n *= d
    return n


def chunks(data: bytes, size: int) -> Iterable[tuple[int, bytes]]:
    """(offset, piece) pairs covering ``data``; at least one (empty) piece for empty data."""
    if not data:
        yield 0, b""
        return
    for off in range(0, len(data), size):
        yield off, data[off:off + size]


@dataclass
class DeviceInfo:
    """The HELLO reply, typed."""
    version: int
    caps: int
    max_payload: int
    rx_window: int
    max_runs: int
    timer_units: int
    default_unit: int
    clock_hz: int
    ram_bytes: int
    flash_bytes: int
    builtin_models: int
    boot_id: int
    device: str
    runtime: str
    board: str
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_fields(cls, f: dict) -> "DeviceInfo":
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in f.items() if k in names and k != "extra"})

    def has(self, cap: Caps) -> bool:
        return bool(self.caps & cap)

    def units(self) -> list[str]:
        return [UNIT_NAMES[u] for u in TimerUnit if self.timer_units & (1 << u)]
