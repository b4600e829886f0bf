"""Frames on the wire (PROTOCOL.md): CRC-32, COBS, the frame header, and the incremental stream decoder that
resyncs at the 0x00 delimiter after damage."""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from ondevice.profiling.protocol.codes import (VERSION, HEADER, HEADER_SIZE, CRC_SIZE, MAX_PAYLOAD, MAX_FRAME,
                                               MAX_ENCODED, FLAG_MORE, REPLY_BIT, MsgType)


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
