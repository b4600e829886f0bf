"""The MCU op lowerings: one function per TFLite op turns it into a kernel call plus its const tables.

``LOWERINGS`` fills itself on first use by importing every module of this package (each registers its ops with
``@lowering``), so the code generator only looks ops up and never imports a lowering module.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ondevice.registry import Registry

if TYPE_CHECKING:
    from ondevice.mcu.emit import Emitter, Lowered
    from ondevice.mcu.reader import Op

LoweringFn = Callable[["Emitter", "Op"], "Lowered"]
LOWERINGS: Registry[LoweringFn] = Registry("MCU op lowering", package=__name__)


def lowering(*names: str):
    def deco(fn: LoweringFn) -> LoweringFn:
        for n in names:
            LOWERINGS.register(n)(fn)
        return fn
    return deco
