"""Model memory and per-op timings on the host runtimes (what sim://executorch and sim://litert report)."""
from __future__ import annotations

import numpy as np
import pytest

from ondevice.profiling.profiler import profile

from _profiling_support import tiny_pte, tiny_tflite


def _conv_program():
    """A non-delegated program whose weights sit in the constant segment and whose activations are planned."""
    import torch
    import torch.nn as nn
    from executorch.exir import to_edge
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Conv2d(8, 16, 3), nn.Flatten(), nn.Linear(16 * 45 * 36, 4))
    prog = to_edge(torch.export.export(m.eval(), (torch.randn(1, 1, 49, 40),))).to_executorch()
    weights = sum(p.numel() * 4 for p in m.parameters())
    return prog, weights


def test_program_memory_reads_the_planners_figures_from_the_pte():
    from ondevice.runtimes.executorch import program_memory
    prog, weights = _conv_program()
    got = program_memory(prog.buffer)
    # the emitter's own plan (Python objects) and our flatbuffer reading of the bytes agree
    plan = prog.executorch_program.execution_plan[0]
    assert got["planned_bytes"] == sum(plan.non_const_buffer_sizes) > 0
    # the activations of the first conv alone ([1,8,47,38] fp32) must fit in the planned buffers
    assert got["planned_bytes"] >= 8 * 47 * 38 * 4
    assert weights <= got["constant_bytes"] < weights + 64 * 1024  # weights + alignment padding
    assert got["constant_segment_bytes"] + got["constant_buffer_bytes"] >= weights


def test_executorch_memory_stats_label_their_source():
    from ondevice.runtimes.base import get_runtime
    m = get_runtime("executorch").load(tiny_pte())
    s = m.memory_stats()
    assert s["arena_bytes"] == s["planned_bytes"] > 0
    assert s["heap_bytes"] is not None and s["heap_bytes"] > 0  # glibc here
    assert s["peak_ram_bytes"] >= s["planned_bytes"] + s["constant_bytes"]
    assert s["peak_ram_bytes"] in (s["heap_bytes"], s["planned_bytes"] + s["constant_bytes"])
    assert s["peak_ram_source"].startswith("executorch") and str(s["planned_bytes"]) in s["peak_ram_source"]


def test_litert_arena_is_the_interpreters_layout():
    from ondevice.mcu.reader import read_graph
    from ondevice.runtimes.base import get_runtime
    from ondevice.runtimes.litert import tensor_memory
    path = tiny_tflite()
    m = get_runtime("litert").load(path)
    s = tensor_memory(m, path.read_bytes())
    g = read_graph(path.read_bytes())
    weights = sum(int(np.prod(t.shape)) * 4 for t in g.tensors if t.is_const and t.dtype == "float32")
    assert s["constant_bytes"] >= weights or s["delegated_tensors"] > 0
    # the arena span holds at least the input (the planner may reuse memory, so it can be below the plain sum)
    assert 49 * 40 * 4 <= s["arena_bytes"] and s["tensor_bytes"] >= 49 * 40 * 4
    full = m.memory_stats()
    assert full["peak_ram_bytes"] >= full["arena_bytes"] + full["constant_bytes"]
    assert full["peak_ram_source"].startswith("litert")


def test_heap_growth_sees_a_real_allocation():
    from ondevice.runtimes._heap import heap_growth
    with heap_growth() as g:
        keep = np.ones(4 << 20, np.uint8)  # 4 MiB through malloc (mmap'd chunk)
    assert g["bytes"] is not None and g["bytes"] >= 4 << 20
    del keep


def test_fold_zero_ops_leaves_no_zero_row():
    from ondevice.runtimes.executorch import _fold_zero_ops
    raw = [("reshape", 0.0), ("conv", 800.0), ("copy", 0.0), ("copy", 0.0), ("fc", 12.5), ("end", 0.0)]
    out = _fold_zero_ops(raw)
    # a leading one joins the first op that registers, the others the op before them
    assert [o["name"] for o in out] == ["conv (+3 <1us)", "fc (+1 <1us)"]
    assert [o["time"] for o in out] == [800, 12]


@pytest.mark.parametrize("runtime,make", [("executorch", tiny_pte), ("litert", tiny_tflite)])
def test_sim_profile_reports_model_peak_ram_with_its_source(tmp_path, runtime, make):
    r = profile(make(), f"sim://{runtime}", runs=20, warmup=2, out=tmp_path)
    m = r["metrics"]["peak_ram_bytes"]
    assert m["source"] == "measured" and m["basis"].startswith(runtime)
    assert 0 < m["value"] < 8 * 1024 * 1024  # the model's memory, not the Python process's (tens of MB)
    assert r["memory"]["arena_used_bytes"] > 0 and r["memory"]["heap_peak_bytes"] > 0
    if runtime == "executorch":
        ops = r["op_timings"]["ops"]
        assert ops and all(o["time"] > 0 for o in ops), ops  # no op reads 0
    else:
        assert "no per-op profiler" in r["op_timings_error"] and "op_timings" not in r
