"""Host codec for the device protocol (PROTOCOL.md): COBS framing, CRC-32, message payloads, stream decoding.

Everything here is pure Python with no I/O, so the same code is used by the host session, the ``sim://`` agent,
the fault injector and the tests. The byte layouts are defined once, as field schemas, in ``SCHEMAS``.
"""
from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any, Iterable

from ondevice.errors import ProtocolError

VERSION = 1
HEADER = struct.Struct("<BBBHH")  # version, type, flags, seq, payload_len
HEADER_SIZE = HEADER.size  # 7
CRC_SIZE = 4
MAX_PAYLOAD = 512  # spec maximum; a device may advertise less in HELLO (never below MIN_PAYLOAD)
MIN_PAYLOAD = 64  # every device accepts this much, so HELLO always fits
MAX_FRAME = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE  # 523 decoded bytes
MAX_ENCODED = MAX_FRAME + (MAX_FRAME + 253) // 254 + 1  # COBS overhead + delimiter = 527 bytes on the wire

FLAG_MORE = 0x01  # more frames of this streamed reply follow
REPLY_BIT = 0x80
UNKNOWN_U32 = 0xFFFFFFFF


class MsgType(enum.IntEnum):
    """Frame types. A reply to request ``T`` has type ``T | 0x80`` and the request's seq."""
    HELLO = 0x01
    PING = 0x02
    RESET = 0x03
    LOAD_MODEL_BEGIN = 0x10
    LOAD_MODEL_CHUNK = 0x11
    LOAD_MODEL_END = 0x12
    SELECT_BUILTIN_MODEL = 0x13
    MODEL_INFO = 0x14
    SET_MODE = 0x20
    SET_INPUT = 0x21
    RUN = 0x22
    GET_TIMINGS = 0x23
    GET_OUTPUT = 0x24
    GET_MEMORY = 0x25
    GET_OP_TIMINGS = 0x26
    # device -> host, unsolicited
    BOOT = 0x70
    LOG = 0x71
    # device -> host, in place of a reply
    ERROR = 0x7F


REQUESTS = [t for t in MsgType if t < 0x70]


def reply_type(t: int) -> int:
    return int(t) | REPLY_BIT


class Caps(enum.IntFlag):
    """Capability bits announced in the HELLO reply."""
    LOAD_MODEL = 1 << 0
    BUILTIN_MODELS = 1 << 1
    OP_TIMINGS = 1 << 2
    FRONTEND = 1 << 3
    MEMORY_STATS = 1 << 4
    RESET = 1 << 5
    GET_OUTPUT = 1 << 6
    LOG = 1 << 7


class TimerUnit(enum.IntEnum):
    US = 0
    CYCLES = 1
    INSTRUCTIONS = 2
    NS = 3


UNIT_NAMES = {TimerUnit.US: "us", TimerUnit.CYCLES: "cycles", TimerUnit.INSTRUCTIONS: "instructions",
              TimerUnit.NS: "ns"}
UNIT_DEFAULT = 0xFF  # RUN: use the device's default unit


class Mode(enum.IntEnum):
    MODEL = 0  # input is the model's input tensor
    FRONTEND_MODEL = 1  # input is int16 PCM (index 0xFF); the frontend and the model are timed together
    FRONTEND = 2  # only the frontend is timed; output 0xFF is the feature map


AUDIO_INDEX = 0xFF  # SET_INPUT / GET_OUTPUT index of the audio input and the feature output


class ModelFormat(enum.IntEnum):
    RAW = 0
    TFLITE = 1
    EXECUTORCH = 2
    COREML = 3
    OD_MCU = 4


class ResetReason(enum.IntEnum):
    POWER_ON = 0
    SOFTWARE = 1
    WATCHDOG = 2
    FAULT = 3
    PIN = 4
    UNKNOWN = 0xFF


DTYPES = {0: "float32", 1: "int8", 2: "uint8", 3: "int16", 4: "int32", 5: "uint16", 6: "float16", 7: "int64",
          8: "bool", 9: "uint32"}
DTYPE_CODES = {v: k for k, v in DTYPES.items()}
DTYPE_SIZES = {"float32": 4, "int8": 1, "uint8": 1, "int16": 2, "int32": 4, "uint16": 2, "float16": 2, "int64": 8,
               "bool": 1, "uint32": 4}


class ErrorCode(enum.IntEnum):
    BAD_CRC = 1
    BAD_SEQ = 2
    UNKNOWN_TYPE = 3
    TOO_LARGE = 4
    NO_MODEL = 5
    SHA_MISMATCH = 6
    BUSY = 7
    OUT_OF_MEMORY = 8
    INVALID_INPUT_SIZE = 9
    BAD_OFFSET = 10
    UNSUPPORTED = 11
    BAD_PAYLOAD = 12
    UNSUPPORTED_VERSION = 13
    BAD_INDEX = 14
    INVOKE_FAILED = 15
    MODEL_INVALID = 16
    INTERNAL = 0xFF


# code -> (what happened, what to try next). Device codes are never shown raw to users.
ERROR_TABLE: dict[int, tuple[str, str]] = {
    ErrorCode.BAD_CRC: ("the device received a frame with a bad CRC",
                        "check the baud rate and cable; lower the speed or shorten the wire"),
    ErrorCode.BAD_SEQ: ("the device cannot repeat the reply to a retried request",
                        "start the request again with a new sequence number"),
    ErrorCode.UNKNOWN_TYPE: ("the device does not know this message type",
                             "update the device firmware/app to the host's protocol version"),
    ErrorCode.TOO_LARGE: ("the payload or model is larger than the device accepts",
                          "use a smaller model, or a board with more flash/RAM"),
    ErrorCode.NO_MODEL: ("no model is loaded on the device",
                         "load a model (LOAD_MODEL) or select a built-in one before running"),
    ErrorCode.SHA_MISMATCH: ("the model's SHA-256 computed on the device does not match",
                             "the upload was corrupted; retry, and check the link quality"),
    ErrorCode.BUSY: ("the device is busy with another request", "wait for the running request to finish"),
    ErrorCode.OUT_OF_MEMORY: ("the device ran out of memory preparing the model",
                              "use a smaller model or arena, or a board with more RAM"),
    ErrorCode.INVALID_INPUT_SIZE: ("the input size does not match the model's input tensor",
                                   "check the artifact's manifest input shape and dtype"),
    ErrorCode.BAD_OFFSET: ("a chunk arrived at an unexpected offset", "resend from the offset the device reports"),
    ErrorCode.UNSUPPORTED: ("the device does not support this request or option",
                            "check the device's capabilities (ondevice devices) and pick a supported option"),
    ErrorCode.BAD_PAYLOAD: ("the device could not parse the request payload",
                            "host and device protocol versions may disagree; update one of them"),
    ErrorCode.UNSUPPORTED_VERSION: ("the device does not speak this protocol version",
                                    "update the firmware/app or the ondevice host package"),
    ErrorCode.BAD_INDEX: ("a tensor or model index is out of range", "check MODEL_INFO for valid indices"),
    ErrorCode.INVOKE_FAILED: ("the runtime on the device failed to run the model",
                              "check the device log; the model may use an op the device runtime lacks"),
    ErrorCode.MODEL_INVALID: ("the device could not parse or prepare the model",
                              "export the model for this runtime (ondevice export --target ...)"),
    ErrorCode.INTERNAL: ("the device hit an internal error", "reset the device and retry; report it if it persists"),
}


def describe_error(code: int) -> tuple[str, str]:
    """(message, hint) for a device error code, including unknown and vendor codes."""
    if code in ERROR_TABLE:
        return ERROR_TABLE[code]
    if code >= 0x8000:
        return (f"device-specific error 0x{code:04x}", "see the device firmware/app documentation for this code")
    return (f"unknown device error code {code}", "the device may be newer than this host; update ondevice")


# ---------------------------------------------------------------------------------------------------------------
# COBS and CRC

def crc32(data: bytes) -> int:
    """CRC-32 (IEEE 802.3, reflected, init/xorout 0xFFFFFFFF): the same as zlib and java.util.zip.CRC32."""
    return zlib.crc32(data) & 0xFFFFFFFF


def cobs_encode(data: bytes) -> bytes:
    """Canonical COBS: no zero bytes in the output; a 254-byte block at the very end gets no extra 0x01."""
    out = bytearray()
    block = bytearray()
    n = len(data)
    for i, b in enumerate(data):
        if b == 0:
            out.append(len(block) + 1)
            out += block
            block.clear()
        else:
            block.append(b)
            if len(block) == 254:
                out.append(0xFF)
                out += block
                block.clear()
                if i == n - 1:  # data ended exactly on a full block: nothing more to write
                    return bytes(out)
    out.append(len(block) + 1)
    out += block
    return bytes(out)


def cobs_decode(enc: bytes) -> bytes:
    """Inverse of :func:`cobs_encode` (without the 0x00 delimiter). Raises ValueError on malformed input."""
    out = bytearray()
    i = 0
    n = len(enc)
    while i < n:
        code = enc[i]
        if code == 0:
            raise ValueError("zero byte inside a COBS frame")
        end = i + code
        if end > n:
            raise ValueError("COBS block runs past the end of the frame")
        block = enc[i + 1:end]
        if 0 in block:
            raise ValueError("zero byte inside a COBS block")
        out += block
        i = end
        if code < 0xFF and i < n:
            out.append(0)
    return bytes(out)


# ---------------------------------------------------------------------------------------------------------------
# Frames

@dataclass
class Frame:
    """One decoded frame: header fields and the raw payload bytes."""
    type: int
    seq: int
    payload: bytes = b""
    flags: int = 0
    version: int = VERSION
    #: the payload's named fields once the session has decoded and validated them (not part of the frame)
    fields: dict | None = field(default=None, compare=False, repr=False)

    @property
    def more(self) -> bool:
        return bool(self.flags & FLAG_MORE)

    @property
    def is_reply(self) -> bool:
        return bool(self.type & REPLY_BIT)

    @property
    def type_name(self) -> str:
        return type_name(self.type)


def type_name(t: int) -> str:
    if t & REPLY_BIT and (t & 0x7F) in MsgType._value2member_map_:
        return MsgType(t & 0x7F).name + "_REPLY"
    if t in MsgType._value2member_map_:
        return MsgType(t).name
    return f"0x{t:02x}"


class FrameError(ValueError):
    """A frame failed COBS, length or CRC checks (it is dropped; the stream resynchronises at the next 0x00)."""

    def __init__(self, kind: str, msg: str):
        super().__init__(msg)
        self.kind = kind


def frame_body(frame: Frame) -> bytes:
    """Header + payload + CRC, before COBS."""
    if len(frame.payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(frame.payload)} bytes exceeds {MAX_PAYLOAD}")
    head = HEADER.pack(frame.version, frame.type, frame.flags, frame.seq & 0xFFFF, len(frame.payload))
    body = head + bytes(frame.payload)
    return body + struct.pack("<I", crc32(body))


def encode_frame(frame: Frame) -> bytes:
    """The exact bytes on the wire: COBS(header + payload + CRC) followed by the 0x00 delimiter."""
    return cobs_encode(frame_body(frame)) + b"\x00"


def encode(type_: int, seq: int, payload: bytes = b"", flags: int = 0) -> bytes:
    return encode_frame(Frame(int(type_), seq, payload, flags))


def decode_body(enc: bytes) -> Frame:
    """Decode one COBS-encoded frame (delimiter already stripped)."""
    try:
        body = cobs_decode(enc)
    except ValueError as e:
        raise FrameError("cobs", str(e)) from None
    if len(body) < HEADER_SIZE + CRC_SIZE:
        raise FrameError("short", f"frame of {len(body)} bytes is shorter than header + CRC")
    if len(body) > MAX_FRAME:
        raise FrameError("too_large", f"frame of {len(body)} bytes exceeds {MAX_FRAME}")
    (crc,) = struct.unpack_from("<I", body, len(body) - CRC_SIZE)
    if crc != crc32(body[:-CRC_SIZE]):
        raise FrameError("crc", "CRC mismatch")
    version, type_, flags, seq, plen = HEADER.unpack_from(body)
    if plen != len(body) - HEADER_SIZE - CRC_SIZE:
        raise FrameError("length", f"payload_len {plen} disagrees with frame size {len(body)}")
    return Frame(type_, seq, bytes(body[HEADER_SIZE:-CRC_SIZE]), flags, version)


def decode_frame(wire: bytes) -> Frame:
    """Decode exactly one frame given as wire bytes (optional leading 0x00s, trailing 0x00 delimiter)."""
    parts = [p for p in wire.split(b"\x00") if p]
    if len(parts) != 1:
        raise FrameError("count", f"expected one frame, found {len(parts)}")
    return decode_body(parts[0])


class StreamDecoder:
    """Incremental decoder: feed arbitrary byte chunks, get whole frames back.

    Garbage, bad CRCs and over-long runs are dropped and counted; decoding resumes after the next 0x00.
    """

    def __init__(self, max_encoded: int = MAX_ENCODED):
        self._buf = bytearray()
        self._max = max_encoded
        self._overflow = False
        self.dropped: dict[str, int] = {}

    def _drop(self, kind: str) -> None:
        self.dropped[kind] = self.dropped.get(kind, 0) + 1

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        start = 0
        while True:
            z = data.find(b"\x00", start)
            chunk = data[start:] if z < 0 else data[start:z]
            if not self._overflow:
                self._buf += chunk
                if len(self._buf) > self._max:
                    self._overflow = True  # skip to the next delimiter
                    self._buf.clear()
            if z < 0:
                return frames
            if self._overflow:
                self._drop("too_large")
                self._overflow = False
            elif self._buf:
                try:
                    frames.append(decode_body(bytes(self._buf)))
                except FrameError as e:
                    self._drop(e.kind)
                self._buf.clear()
            start = z + 1


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
