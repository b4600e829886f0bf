"""The CLI edge: ``app`` parses commands (``app.py``); the ``*_view.py`` modules turn core results into text.

Only this package prints for humans; core functions return results.
"""
from ondevice.cli.app import _entry, app, main

__all__ = ["app", "main", "_entry"]
