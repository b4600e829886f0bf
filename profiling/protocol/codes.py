"""The protocol's numbers (PROTOCOL.md): version, frame sizes, message types, capabilities, timer units, modes,
model formats, reset reasons, dtypes and the device error table with its messages and hints."""
from __future__ import annotations

import enum
import struct

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
