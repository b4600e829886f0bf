"""ExecuTorch runtime on the host (pybindings, XNNPACK kernels linked in): runs ``.pte`` and ``.bpte`` artifacts.

A ``.bpte`` (BundledProgram) also carries test inputs and expected outputs: :meth:`ExecuTorchModel.self_check`
runs them the way a device does.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ondevice.errors import ConfigError, VerifyError
from ondevice.runtimes._guard import guarded_load
from ondevice.runtimes.base import RUNTIMES, LoadedModel, Runtime, TensorSpec

# ExecuTorch ScalarType codes (c10 numbering) -> numpy dtype names.
_DTYPES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16", 6: "float32", 7: "float64",
           11: "bool"}


def _spec(meta, name: str) -> TensorSpec:
    code = int(meta.dtype())
    if code not in _DTYPES:
        raise ConfigError(f"ExecuTorch tensor {name} has scalar type {code}, which ondevice cannot feed",
                          "export with float or int8 inputs")
    return TensorSpec(name=name, shape=[int(x) for x in meta.sizes()], dtype=_DTYPES[code])


def _bad(name: str, e: Exception) -> ConfigError:
    return ConfigError(f"{name} is not a loadable ExecuTorch program ({str(e).splitlines()[0][:160]})",
                       "the file may be truncated or corrupt; re-export it with `ondevice export --target executorch`")


class ExecuTorchModel(LoadedModel):
    """A loaded ``forward`` method. Inputs and outputs are float: the q/dq ops live inside the program."""

    def __init__(self, data: bytes, name: str, bundled: bool):
        import torch  # noqa: F401  (registers tensor types the pybindings need)
        from executorch.extension.pybindings import portable_lib as pl
        self.name, self.bundled = name, bundled
        self._data = data  # the loaded program points into this buffer: keep it alive as long as the module
        from ondevice.capture import capture_fd
        log: list[str] = []
        try:
            # XNNPACK's cpuinfo probe prints /sys lookups to C stderr at load; keep them unless loading fails
            with capture_fd(2) as log:
                if bundled:
                    self._bundle = pl._load_bundled_program_from_buffer(data)
                    self._module = pl._load_for_executorch_from_bundled_program(self._bundle)
                else:
                    self._bundle = None
                    self._module = pl._load_for_executorch_from_buffer(data)
                meta = self._module.method_meta("forward")
        except Exception as e:  # the pybindings raise RuntimeError/ValueError with ET error codes
            errs = [ln for ln in "".join(log).splitlines() if "cpuinfo" not in ln and ln.strip()]
            raise _bad(name, e if not errs else RuntimeError(f"{e}; {errs[-1].strip()}")) from None
        self.inputs = [_spec(meta.input_tensor_meta(i), f"input_{i}") for i in range(meta.num_inputs())]
        self.outputs = [_spec(meta.output_tensor_meta(i), f"output_{i}") for i in range(meta.num_outputs())]

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        import torch
        if len(inputs) != len(self.inputs):
            raise VerifyError(f"{self.name} takes {len(self.inputs)} inputs, got {len(inputs)}")
        args = [torch.from_numpy(np.ascontiguousarray(x, dtype=s.dtype).reshape(s.shape))
                for s, x in zip(self.inputs, inputs)]
        try:
            outs = self._module.run_method("forward", args)
        except RuntimeError as e:
            raise VerifyError(f"ExecuTorch failed to run {self.name}: {e}") from None
        return [o.detach().numpy().copy() if hasattr(o, "detach") else np.asarray(o) for o in outs]

    def memory_stats(self) -> dict:
        """Model memory: the program's plan and the allocator's growth (see :func:`model_memory`); cached."""
        if not hasattr(self, "_memory"):
            self._memory = model_memory(self)
        return self._memory

    def self_check(self, n_cases: int, rtol: float = 1e-3, atol: float = 1e-2) -> int:
        """Run the bundled test cases and compare with the bundled expected outputs; returns the count checked."""
        if not self.bundled:
            raise VerifyError(f"{self.name} is not a BundledProgram", "self-check needs the .bpte artifact")
        for i in range(n_cases):
            try:
                self._bundle.verify_result_with_bundled_expected_output("forward", i, rtol, atol)
            except RuntimeError as e:
                raise VerifyError(f"{self.name}: bundled test case {i} differs from its expected output ({e})",
                                  "the runtime and the exporter disagree; re-export and compare versions") from None
        return n_cases


@RUNTIMES.register("executorch")
class ExecuTorchRuntime(Runtime):
    """ExecuTorch pybindings (portable + XNNPACK) on the host CPU."""
    extensions = (".pte", ".bpte")

    def available(self) -> tuple[bool, str]:
        try:
            from executorch.extension.pybindings import portable_lib  # noqa: F401
        except ImportError as e:
            return False, f"executorch pybindings are not installed ({e})"
        return True, ""

    def installed(self) -> tuple[bool, str]:
        """Like available() without importing the pybindings (they import torch): `ondevice devices` stays fast."""
        import importlib.util
        if importlib.util.find_spec("executorch.extension.pybindings.portable_lib") is None:
            return False, "executorch pybindings are not installed"
        return True, ""

    def load(self, path: str | Path) -> ExecuTorchModel:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path} does not exist", "run `ondevice export --target executorch` first")
        data = path.read_bytes()
        return guarded_load(lambda: ExecuTorchModel(data, path.name, bundled=path.suffix == ".bpte"), path.name,
                            path.suffix, data, "ExecuTorch")


# --- model memory and per-op timings (sim:// reports them) --------------------------------------------------------
def _fb_table(buf: bytes, pos: int):
    import flatbuffers
    return flatbuffers.table.Table(bytearray(buf) if not isinstance(buf, bytearray) else buf, pos)


def _fb_field(tab, slot: int) -> int:
    return tab.Offset(4 + 2 * slot)  # vtable entry of field `slot` (0 = absent)


def _fb_tables(tab, slot: int) -> list:
    o = _fb_field(tab, slot)
    if not o:
        return []
    import flatbuffers
    start, n = tab.Vector(o), tab.VectorLen(o)
    return [flatbuffers.table.Table(tab.Bytes, tab.Indirect(start + 4 * i)) for i in range(n)]


def _fb_vec_len(tab, slot: int) -> int:
    o = _fb_field(tab, slot)
    return tab.VectorLen(o) if o else 0


def program_memory(data: bytes) -> dict:
    """What an ExecuTorch program asks the runtime for, read from the .pte flatbuffer (schema/program.fbs):
    ``planned_bytes`` (forward's memory-planned buffers, ExecutionPlan.non_const_buffer_sizes) and
    ``constant_bytes`` (constant segment + inline constant buffers + delegate blobs, e.g. XNNPACK's packed graph)."""
    import flatbuffers
    from flatbuffers import number_types as N
    buf = bytearray(data)
    prog = flatbuffers.table.Table(buf, flatbuffers.encode.Get(N.UOffsetTFlags.packer_type, buf, 0))
    planned = 0
    for plan in _fb_tables(prog, 1):  # Program.execution_plan
        o = _fb_field(plan, 0)
        if o and plan.String(o + plan.Pos).decode() != "forward":
            continue
        o = _fb_field(plan, 8)  # ExecutionPlan.non_const_buffer_sizes: [int64]
        if o:
            start = plan.Vector(o)
            planned = sum(plan.Get(N.Int64Flags, start + 8 * i) for i in range(plan.VectorLen(o)))
    inline = sum(_fb_vec_len(b, 0) for b in _fb_tables(prog, 2))  # constant_buffer[].storage
    delegate = sum(_fb_vec_len(d, 0) for d in _fb_tables(prog, 3))  # backend_delegate_data[].data
    segments = [s.Get(N.Uint64Flags, s.Pos + s.Offset(6)) if s.Offset(6) else 0 for s in _fb_tables(prog, 4)]
    const_seg = 0
    o = _fb_field(prog, 5)  # Program.constant_segment: SubsegmentOffsets
    if o:
        sub = flatbuffers.table.Table(buf, prog.Indirect(o + prog.Pos))
        idx = sub.Get(N.Uint32Flags, sub.Pos + sub.Offset(4)) if sub.Offset(4) else 0
        if _fb_vec_len(sub, 1) > 1 and idx < len(segments):  # offsets[0] is the reserved empty entry
            const_seg = segments[idx]
    other_segments = sum(segments) - const_seg  # named data / delegate segments outside the flatbuffer
    return {"planned_bytes": int(planned), "constant_segment_bytes": int(const_seg),
            "constant_buffer_bytes": int(inline), "delegate_bytes": int(delegate + other_segments),
            "constant_bytes": int(const_seg + inline + delegate + other_segments)}


def measured_model_heap(data: bytes, specs: Sequence[TensorSpec]) -> int | None:
    """Bytes malloc holds for a second copy of the program after its load and one run (glibc mallinfo2).

    A second copy, so the runtime's one-time process state (thread pool, cpuinfo) is not counted as the model's."""
    import torch
    from executorch.extension.pybindings import portable_lib as pl
    from ondevice.runtimes._heap import heap_growth
    args = [torch.zeros(s.shape, dtype=getattr(torch, s.dtype)) for s in specs]
    copy = bytes(data)
    with heap_growth() as grown:
        mod = pl._load_for_executorch_from_buffer(copy)
        out = mod.run_method("forward", args)
    del out, mod
    return grown["bytes"]


def model_memory(model: "ExecuTorchModel") -> dict:
    """memory_stats() of a loaded plain .pte: the program's figures, the allocator's, and which is peak_ram_bytes."""
    if model.bundled:
        return {}
    plan = program_memory(model._data)
    model.run([np.zeros(sp.shape, sp.dtype) for sp in model.inputs])  # one-time process state is not the model's
    heap = measured_model_heap(model._data, model.inputs)
    from_plan = plan["planned_bytes"] + plan["constant_bytes"]
    stats = dict(plan, arena_bytes=plan["planned_bytes"], heap_bytes=heap)
    if heap is not None and heap >= from_plan:
        stats["peak_ram_bytes"] = heap
        stats["peak_ram_source"] = (f"executorch: malloc growth over load + 1 run of the program (glibc mallinfo2); "
                                    f"program plan: {plan['planned_bytes']} B planned buffers + "
                                    f"{plan['constant_bytes']} B constants")
    else:
        stats["peak_ram_bytes"] = from_plan
        stats["peak_ram_source"] = (f"executorch program: {plan['planned_bytes']} B memory-planned buffers + "
                                    f"{plan['constant_bytes']} B constants (segment + delegate data)"
                                    + ("" if heap is None else f"; malloc growth {heap} B"))
    return stats


_CONTAINER_EVENTS = ("Method::execute", "DELEGATE_CALL", "OPERATOR_CALL")  # spans around ops, not ops


def op_timings(program: bytes, inputs: list[np.ndarray], runs: int = 200) -> list[dict]:
    """Per-op mean time (ns) over ``runs`` invokes with ETDump on (a separate pass: recording would slow the timed
    runs). XNNPACK times its operators in whole microseconds, so sub-microsecond ops read 0 in every run; each such
    op is folded into the op before it (named ``... (+k <1us)``), the finest grouping in which no row reads 0."""
    import tempfile
    import os
    import torch
    from executorch.devtools import Inspector
    from executorch.extension.pybindings import portable_lib as pl
    data = bytes(program)  # the loaded program points into this buffer: keep it alive until we are done
    try:
        mod = pl._load_for_executorch_from_buffer(data, enable_etdump=True, debug_buffer_size=0)
    except Exception as e:  # noqa: BLE001 - e.g. a BundledProgram, which this path does not take
        raise VerifyError(f"per-op profiling needs a plain .pte ({str(e)[:100]})") from None
    args = [torch.from_numpy(np.array(x)) for x in inputs]
    for _ in range(max(1, runs)):
        mod.run_method("forward", args)
    import warnings
    with tempfile.TemporaryDirectory(prefix="od-etdump-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Output Buffer not found": we asked for no debug buffer
        path = os.path.join(tmp, "run.etdp")
        mod.write_etdump_result_to_file(path)
        inspector = Inspector(etdump_path=path)
    raw = [(e.name, float(np.mean(e.perf_data.raw)) * 1e6) for block in inspector.event_blocks
           if block.name == "Execute" for e in block.events
           if e.perf_data is not None and e.name not in _CONTAINER_EVENTS]  # ms -> ns
    return _fold_zero_ops(raw)


def _fold_zero_ops(raw: list[tuple[str, float]]) -> list[dict]:
    groups: list[list] = []  # [name, ns, folded]
    pending = 0
    for name, ns in raw:
        if ns > 0:
            groups.append([name, ns, pending if not groups else 0])
            pending = 0
        elif groups:
            groups[-1][2] += 1
        else:
            pending += 1  # leading sub-resolution ops join the first op that registers
    out = []
    for name, ns, k in groups:
        label = f"{name[:40]} (+{k} <1us)" if k else name[:48]
        out.append({"time": max(1, int(round(ns))), "name": label})
    return out
