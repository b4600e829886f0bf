"""One error family. Library code raises these; only the CLI turns them into exit codes."""
from __future__ import annotations


class OndeviceError(Exception):
    """An expected failure caused by the user, the model, the data or the device.

    ``message`` says what happened; ``hint`` says what to try next. The CLI prints both on one line each
    and exits with ``exit_code`` (no traceback unless ``--debug``). ``details`` is an optional longer text (e.g. a
    lint report) the CLI prints before them.
    """

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None, *, details: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def __str__(self) -> str:  # one line, hint after
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"


class ConfigError(OndeviceError):
    """Bad option, path or configuration."""
    exit_code = 2


class DataError(OndeviceError):
    """A dataset row or file is missing or malformed."""
    exit_code = 3


class ConstraintError(OndeviceError):
    """The model breaks a device constraint (activation, shapes, attention, op allowlist)."""
    exit_code = 4


class UnsupportedOpError(ConstraintError):
    """An op cannot be lowered for a target."""


class ExportError(OndeviceError):
    """An exporter failed to produce an artifact."""
    exit_code = 5


class VerifyError(OndeviceError):
    """An artifact could not be checked, or disagrees with the reference beyond tolerance."""
    exit_code = 6


class TransportError(OndeviceError):
    """A device URL could not be opened, or the byte stream failed (timeout, port busy, closed)."""
    exit_code = 7


class ProtocolError(TransportError):
    """Frames were malformed or out of sequence beyond what retries can repair."""


class DeviceError(OndeviceError):
    """The device answered with an error code (decoded from the protocol's table)."""
    exit_code = 8

    def __init__(self, message: str, hint: str | None = None, code: int | None = None):
        super().__init__(message, hint)
        self.code = code


class DeviceResetError(DeviceError):
    """The device rebooted in the middle of a session."""


class ToolMissingError(OndeviceError):
    """An external tool (qemu, arm-none-eabi-gcc, edgetpu_compiler, espeak-ng, adb) is not installed."""
    exit_code = 9


class DeviceProtocolError(ProtocolError):
    """A device frame passed its CRC but a field broke PROTOCOL.md (or what the device announced), even after
    fetching it again. Names the message, the field and the value; such a value is never reported as a figure."""

    def __init__(self, message: str, hint: str | None = None, *, msg_type: str = "", field: str = "",
                 value=None):
        super().__init__(message, hint)
        self.msg_type, self.field, self.value = msg_type, field, value
