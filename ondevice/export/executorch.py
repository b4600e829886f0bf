"""executorch target: PT2E INT8 lowered to XNNPACK (``.pte``), plus a BundledProgram (``.bpte``) for self-checks.

The converted QAT graph is exported as-is and lowered with ``to_edge_transform_and_lower``; the manifest lists
which ops XNNPACK took and which stayed on ExecuTorch's portable kernels (from ``get_delegation_info``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ondevice.errors import ExportError
from ondevice.export.manifest import build_manifest, name_inputs, write_manifest
from ondevice.export.registry import Exporter, register
from ondevice.export.tflite import normalisation, quantization_record
from ondevice.fsutil import atomic_path

BUNDLED_CASES = 4
# XNNPACK and the PT2E reference round differently; through the attention softmax one step grows to several
# (trained mitsis: median 1, max 8 output steps on 200 test clips). The self-check uses verify's mismatch tolerance
# (verify.TOL_STEPS): it is there to catch a broken program, which is off by tens of steps.
BUNDLED_ATOL_STEPS = 8


def output_scale(gm) -> float | None:
    """Scale of the final dequantize in a converted PT2E graph (one output quantization step)."""
    out = next(n for n in gm.graph.nodes if n.op == "output")
    node = out.args[0][0] if isinstance(out.args[0], (tuple, list)) else out.args[0]
    seen = 0
    while node is not None and seen < 8:
        if "dequantize" in str(node.target):
            s = node.args[1]
            return float(s) if isinstance(s, (int, float)) else None
        node = node.args[0] if node.args and hasattr(node.args[0], "op") else None
        seen += 1
    return None


def delegation_summary(edge_program) -> dict:
    """{delegated: {op: n}, not_delegated: {op: n}, ...} from executorch's delegation info."""
    from executorch.devtools.backend_debug import get_delegation_info
    info = get_delegation_info(edge_program.exported_program().graph_module)
    d, nd = {}, {}
    for op, b in info.delegation_by_operator.items():
        if op == "getitem":  # tuple unpacking of the delegate's outputs, not an op
            continue
        if b.delegated:
            d[op] = b.delegated
        if b.non_delegated:
            nd[op] = b.non_delegated
    return {"backend": "XnnpackBackend", "delegated": d, "not_delegated": nd,
            "delegated_subgraphs": info.num_delegated_subgraphs,
            "delegated_nodes": info.num_delegated_nodes, "not_delegated_nodes": info.num_non_delegated_nodes}


def unsqueeze_to_reshape(gm) -> int:
    """Rewrite ``unsqueeze`` as ``reshape`` to the same static shape; returns how many were rewritten.

    XNNPACK takes reshapes but leaves unsqueeze on the portable kernels, which splits the delegate in pieces.
    """
    import torch
    n_done = 0
    for n in gm.graph.nodes:
        if n.op == "call_function" and n.target == torch.ops.aten.unsqueeze.default and "val" in n.meta:
            n.target = torch.ops.aten.reshape.default
            n.args = (n.args[0], [int(d) for d in n.meta["val"].shape])
            n_done += 1
    if n_done:
        gm.graph.lint()
        gm.recompile()
    return n_done


def lower(run):
    """(ExecutorchProgramManager, delegation summary, edge op counts) for the run's QAT graph."""
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    from torchao.quantization.pt2e.constant_fold import constant_fold
    from torchao.quantization.pt2e.quantize_pt2e import _quant_node_constraint

    ex = tuple(run.example_input())
    gm = run.qat_module()
    # The run keeps weight quantize ops unfolded (litert wants them); XNNPACK wants int8 weight constants.
    constant_fold(gm, _quant_node_constraint)
    rewritten = unsqueeze_to_reshape(gm)
    try:
        ep = torch.export.export(gm, ex)
        edge = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()])
        deleg = delegation_summary(edge)
        deleg["rewrites"] = {"unsqueeze->reshape": rewritten} if rewritten else {}
        et = edge.to_executorch()
    except Exception as e:  # noqa: BLE001 - export/lowering raise many types; keep the first line
        msg = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise ExportError(f"ExecuTorch could not lower {run.name}: {msg}",
                          "run `ondevice lint --target executorch`; set ONDEVICE_DEBUG=1 for the traceback") from e
    return et, deleg


def bundle(et, run, n: int = BUNDLED_CASES) -> tuple[bytes, float]:
    """BundledProgram bytes with ``n`` calibration inputs and the QAT model's outputs; returns (bytes, atol)."""
    import torch
    from executorch.devtools import BundledProgram
    from executorch.devtools.bundled_program.config import MethodTestCase, MethodTestSuite
    from executorch.devtools.bundled_program.serialize import serialize_from_bundled_program_to_flatbuffer

    qat = run.qat_module()
    xs = [c[:n] for c in run.calibration_inputs()]
    cases = []
    with torch.no_grad():
        for i in range(xs[0].shape[0]):
            x = [c[i:i + 1].contiguous() for c in xs]
            y = qat(*x)
            y = y[0] if isinstance(y, (tuple, list)) else y
            cases.append(MethodTestCase(inputs=x, expected_outputs=[y.detach().clone()]))
    bp = BundledProgram(et, [MethodTestSuite(method_name="forward", test_cases=cases)])
    step = output_scale(qat) or 1e-2
    return serialize_from_bundled_program_to_flatbuffer(bp), BUNDLED_ATOL_STEPS * step


@register("executorch", extension=".pte", quant="int8")
class ExecuTorchExporter(Exporter):
    """PT2E INT8 lowered to XNNPACK: .pte and a self-checking .bpte."""

    def export(self, run, out_dir: Path) -> Path:
        from ondevice.runtimes.executorch import ExecuTorchModel
        out_dir = Path(out_dir)
        dest = self.artifact_path(run, out_dir)
        bdest = dest.with_suffix(".bpte")
        et, deleg = lower(run)
        pte = et.buffer
        bpte, atol = bundle(et, run)
        # Load both back in the runtime before publishing them: a program that does not load is not an artifact.
        loaded = ExecuTorchModel(pte, dest.name, bundled=False)
        bl = ExecuTorchModel(bpte, bdest.name, bundled=True)
        bl.self_check(BUNDLED_CASES, rtol=0.0, atol=atol)
        loaded.run([x.detach().numpy().astype(np.float32) for x in run.example_inputs()])
        # the program's I/O carry no names; use the model's input names so every target's manifest agrees
        name_inputs(run, loaded.inputs)
        ops = {**deleg["not_delegated"]}
        for op, n in deleg["delegated"].items():
            ops[op] = ops.get(op, 0) + n
        common = dict(run=run, target=self.name, quant=self.quant, inputs=loaded.inputs, outputs=loaded.outputs,
                      ops=ops, delegation=deleg, quantization=quantization_record(run),
                      normalisation=normalisation(run), io_note="float input/output; q/dq run inside the program")
        with atomic_path(dest) as tmp, atomic_path(bdest) as btmp:
            tmp.write_bytes(pte)
            btmp.write_bytes(bpte)
            m = build_manifest(tmp, bundled_program=bdest.name, **common)
            bm = build_manifest(btmp, program=dest.name, bundled_test_cases=BUNDLED_CASES, bundled_atol=atol,
                                bundled_expected="QAT PyTorch (PT2E converted) outputs", **common)
        m["artifact"], bm["artifact"] = dest.name, bdest.name
        write_manifest(dest, m)
        write_manifest(bdest, bm)
        return dest
