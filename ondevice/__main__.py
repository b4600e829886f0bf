from ondevice.cli import _entry

_entry()
