"""LiteRT (TensorFlow Lite) interpreter on the host: runs ``.tflite`` artifacts (tflite and edgetpu targets).

Uses the default op resolver (optimised kernels + XNNPACK): its BUILTIN_REF int8 SUM kernel is wrong.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ondevice.errors import ConfigError, VerifyError
from ondevice.runtimes._guard import guarded_load
from ondevice.runtimes.base import RUNTIMES, LoadedModel, Runtime, TensorSpec


def spec_from_detail(d: dict) -> TensorSpec:
    """LiteRT tensor detail dict -> TensorSpec (per-tensor quantization; None scale for float tensors)."""
    scale, zp = d.get("quantization", (0.0, 0))
    q = scale != 0.0 and np.issubdtype(d["dtype"], np.integer)
    return TensorSpec(name=d["name"], shape=[int(x) for x in d["shape"]], dtype=np.dtype(d["dtype"]).name,
                      scale=float(scale) if q else None, zero_point=int(zp) if q else None)


class LiteRTModel(LoadedModel):
    """A ``.tflite`` loaded in ``ai_edge_litert.interpreter.Interpreter``."""

    def __init__(self, data: bytes, name: str, preserve_all_tensors: bool = False, num_threads: int | None = None,
                 reference_kernels: bool = False):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
        # reference_kernels: TFLite's reference int8 kernels (what TFLM ports); XNNPACK and the optimized builtins
        # round differently (HARD_SWISH, requantization): several output steps at a softmax
        resolver = OpResolverType.BUILTIN_REF if reference_kernels else OpResolverType.AUTO
        try:
            self.interp = Interpreter(model_content=data, num_threads=num_threads,
                                      experimental_preserve_all_tensors=preserve_all_tensors,
                                      experimental_op_resolver_type=resolver)
            self.interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ConfigError(f"{name} is not a loadable TFLite model ({str(e).splitlines()[0][:160]})",
                              "the file may be truncated or corrupt; re-export it with `ondevice export`") from None
        self._in = self.interp.get_input_details()
        self._out = self.interp.get_output_details()
        self.inputs = [spec_from_detail(d) for d in self._in]
        self.outputs = [spec_from_detail(d) for d in self._out]
        self.name = name
        self._data = data

    def memory_stats(self) -> dict:
        """Model memory: LiteRT's arena and constants, and the allocator's growth (see :func:`model_memory`)."""
        if not hasattr(self, "_memory"):
            self._memory = model_memory(self, self._data)
        return self._memory

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if len(inputs) != len(self._in):
            raise VerifyError(f"{self.name} takes {len(self._in)} inputs, got {len(inputs)}")
        for d, x in zip(self._in, inputs):
            self.interp.set_tensor(d["index"], np.ascontiguousarray(x, dtype=d["dtype"]).reshape(d["shape"]))
        self.interp.invoke()
        return [self.interp.get_tensor(d["index"]).copy() for d in self._out]

    def tensors(self) -> list[dict]:
        """Every tensor after the last ``run`` (needs ``preserve_all_tensors=True``): index, name, spec, value."""
        out = []
        for d in self.interp.get_tensor_details():
            try:
                value = self.interp.get_tensor(d["index"])
            except ValueError:  # tensors with no data (e.g. optional inputs)
                continue
            out.append({"index": d["index"], "name": d["name"], "spec": spec_from_detail(d), "value": value.copy()})
        return out


@RUNTIMES.register("litert")
class LiteRTRuntime(Runtime):
    """LiteRT interpreter (ai-edge-litert) on the host CPU."""
    extensions = (".tflite",)

    def available(self) -> tuple[bool, str]:
        try:
            import ai_edge_litert.interpreter  # noqa: F401
        except ImportError as e:
            return False, f"ai-edge-litert is not installed ({e})"
        return True, ""

    def load(self, path: str | Path, preserve_all_tensors: bool = False, num_threads: int | None = None,
             reference_kernels: bool = False) -> LiteRTModel:
        """Load a ``.tflite``. ``preserve_all_tensors`` keeps intermediates for layer-by-layer comparison;
        ``reference_kernels`` runs TFLite's reference kernels (no XNNPACK, no optimized builtins)."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path} does not exist", "run `ondevice export --target tflite` first")
        data = path.read_bytes()
        return guarded_load(lambda: LiteRTModel(data, path.name, preserve_all_tensors, num_threads, reference_kernels),
                            path.name, ".tflite", data, "LiteRT")


# --- model memory (sim:// reports it) -----------------------------------------------------------------------------
def tensor_memory(model: LiteRTModel, data: bytes) -> dict:
    """LiteRT's tensor memory from the interpreter's own buffers: ``arena_bytes`` is the address span of the
    non-constant tensors LiteRT placed in its arena (its planner reuses memory, so this is the arena as laid out,
    not a sum); ``tensor_bytes`` their plain sum; ``constant_bytes`` the weights the interpreter reads. Tensors
    inside an XNNPACK partition have no interpreter buffer: the delegate allocates them (see heap_bytes)."""
    from ondevice.mcu.reader import read_graph
    graph = read_graph(data, model.name)
    spans, const, delegated = [], 0, 0
    for t in graph.tensors:
        try:
            a = model.interp.tensor(t.index)()
        except ValueError:  # no buffer: owned by a delegate partition
            delegated += 1
            continue
        if t.is_const:
            const += a.nbytes
        elif a.nbytes:
            start = a.__array_interface__["data"][0]
            spans.append((start, start + a.nbytes))
    arena = _arena_span(spans)
    return {"arena_bytes": int(arena), "tensor_bytes": int(sum(e - s for s, e in spans)),
            "constant_bytes": int(const), "delegated_tensors": delegated}


def _arena_span(spans: list[tuple[int, int]]) -> int:
    """Address span of the tensors that sit together (the arena); a tensor far from the others (a SHAPE-chain
    output LiteRT computes at prepare time and keeps on the heap) counts by its own size, not the gap to it."""
    total = sum(e - s for s, e in spans)
    arena, lo, hi = 0, None, None
    for s, e in sorted(spans):
        if hi is not None and s - hi > total:  # a planned arena has no hole larger than all its tensors
            arena += hi - lo
            lo = None
        lo, hi = (s, e) if lo is None else (lo, max(hi, e))
    return arena + (hi - lo if lo is not None else 0)


def measured_model_heap(model: LiteRTModel, data: bytes) -> int | None:
    """Bytes malloc holds for a second interpreter of the same model after allocate_tensors and one invoke
    (glibc mallinfo2): the arena, the delegate's packed weights and workspace. A second one, so process-wide
    state (the XNNPACK thread pool, cpuinfo) is not counted as the model's."""
    from ai_edge_litert.interpreter import Interpreter
    from ondevice.runtimes._heap import heap_growth
    copy = bytes(data)
    with heap_growth() as grown:
        it = Interpreter(model_content=copy)
        it.allocate_tensors()
        it.invoke()
    del it
    return grown["bytes"]


def model_memory(model: LiteRTModel, data: bytes) -> dict:
    stats = tensor_memory(model, data)
    model.interp.invoke()  # the first invoke sets up process-wide state: not the model's memory
    heap = measured_model_heap(model, data)
    stats["heap_bytes"] = heap
    from_tensors = stats["arena_bytes"] + stats["constant_bytes"]
    if heap is not None and heap >= from_tensors:
        stats["peak_ram_bytes"] = heap
        stats["peak_ram_source"] = (f"litert: malloc growth over load + allocate_tensors + 1 invoke (glibc "
                                    f"mallinfo2); interpreter arena {stats['arena_bytes']} B + constants "
                                    f"{stats['constant_bytes']} B; {stats['delegated_tensors']} tensors in XNNPACK")
    else:
        stats["peak_ram_bytes"] = from_tensors
        stats["peak_ram_source"] = (f"litert tensor details: arena {stats['arena_bytes']} B + constants "
                                    f"{stats['constant_bytes']} B" + ("" if heap is None else f"; malloc {heap} B"))
    return stats
