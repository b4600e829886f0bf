"""Host codec for the device protocol (PROTOCOL.md): COBS framing, CRC-32, message payloads, stream decoding.

Everything here is pure Python with no I/O, so the same code is used by the host session, the ``sim://`` agent,
the fault injector and the tests. The byte layouts are defined once, as field schemas, in ``SCHEMAS``
(:mod:`.payloads`); the numbers are in :mod:`.codes` and the framing in :mod:`.framing`. Import from this package
(``from ondevice.profiling import protocol as P``): it holds the public names of all three.
"""
from __future__ import annotations

from ondevice.errors import ProtocolError  # raised by the codec: callers catch it as P.ProtocolError
from ondevice.profiling.protocol.codes import (VERSION, HEADER, HEADER_SIZE, CRC_SIZE, MAX_PAYLOAD, MIN_PAYLOAD,
                                               MAX_FRAME, MAX_ENCODED, FLAG_MORE, REPLY_BIT, UNKNOWN_U32, MsgType,
                                               REQUESTS, reply_type, Caps, TimerUnit, UNIT_NAMES, UNIT_DEFAULT, Mode,
                                               AUDIO_INDEX, ModelFormat, ResetReason, DTYPES, DTYPE_CODES,
                                               DTYPE_SIZES, ErrorCode, ERROR_TABLE, describe_error)
from ondevice.profiling.protocol.framing import (crc32, cobs_encode, cobs_decode, Frame, type_name, FrameError,
                                                 frame_body, encode_frame, encode, decode_body, decode_frame,
                                                 StreamDecoder)
from ondevice.profiling.protocol.payloads import (SCHEMAS, RUN_DATA_FIXED, MAX_TIMINGS_PER_FRAME, schema_for,
                                                  pack_fields, unpack_fields, pack, unpack, message, tensor_nbytes,
                                                  chunks, DeviceInfo)

__all__ = ["ProtocolError", "VERSION", "HEADER", "HEADER_SIZE", "CRC_SIZE", "MAX_PAYLOAD", "MIN_PAYLOAD", "MAX_FRAME",
           "MAX_ENCODED", "FLAG_MORE", "REPLY_BIT", "UNKNOWN_U32", "MsgType", "REQUESTS", "reply_type", "Caps",
           "TimerUnit", "UNIT_NAMES", "UNIT_DEFAULT", "Mode", "AUDIO_INDEX", "ModelFormat", "ResetReason", "DTYPES",
           "DTYPE_CODES", "DTYPE_SIZES", "ErrorCode", "ERROR_TABLE", "describe_error", "crc32", "cobs_encode",
           "cobs_decode", "Frame", "type_name", "FrameError", "frame_body", "encode_frame", "encode", "decode_body",
           "decode_frame", "StreamDecoder", "SCHEMAS", "RUN_DATA_FIXED", "MAX_TIMINGS_PER_FRAME", "schema_for",
           "pack_fields", "unpack_fields", "pack", "unpack", "message", "tensor_nbytes", "chunks", "DeviceInfo"]
