"""The one cache root: ``$ONDEVICE_CACHE``, else ``~/.cache/ondevice``. Every cached build lives under it."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """``<cache root>/<parts...>`` (not created)."""
    return Path(os.environ.get("ONDEVICE_CACHE") or Path.home() / ".cache" / "ondevice").joinpath(*parts)
