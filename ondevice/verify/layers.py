"""Where an artifact and the QAT model part, layer by layer: LiteRT's preserved intermediate tensors against the
PT2E graph's activations, end to end and on identical inputs (``verify`` calls :func:`localise`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

# A layer "diverges" once it is this many of its own quantization steps away from the PT2E activation.
LAYER_TOL_STEPS = 3


def _activation_q(n):
    """The quantize node behind dequantize node ``n`` when ``n`` dequantizes an activation (not a weight), else None."""
    import torch
    if n.op != "call_function" or n.target != torch.ops.quantized_decomposed.dequantize_per_tensor.default:
        return None
    src = n.args[0]
    if getattr(src, "target", None) != torch.ops.quantized_decomposed.quantize_per_tensor.default \
            or src.args[0].op == "get_attr":
        return None
    return src


def pt2e_activations(run, x1: np.ndarray) -> list[dict]:
    """Every quantized activation of the PT2E graph in execution order: node name, scale, dequantized value."""
    import torch
    gm = run.qat_module()
    acts: list[dict] = []
    seen: set = set()

    class Rec(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            src = _activation_q(n)
            if src is not None and src not in seen:
                seen.add(src)
                acts.append({"node": src.args[0].name, "scale": float(n.args[1]), "shape": list(out.shape),
                             "value": out.detach().numpy().copy()})
            return out

    with torch.no_grad():
        Rec(gm).run(*(torch.from_numpy(x) for x in _tuple(x1)))
    return acts


def _tuple(x1) -> tuple:
    return tuple(x1) if isinstance(x1, (tuple, list)) else (x1,)


def short_name(name: str) -> str:
    """Converter tensor names are module paths joined by '/' and ';': keep the last three module names."""
    first = name.split(";")[0]
    parts = [p.rsplit(".", 1)[-1] for p in first.split("/") if p]
    return "/".join(parts[-3:]) or name


def _aligned(pt: np.ndarray, shape: list[int]) -> np.ndarray | None:
    """PT2E value laid out like the TFLite tensor (NCHW -> NHWC when that is what matches)."""
    if pt.size != int(np.prod(shape)):
        return None
    if list(pt.shape) == list(shape):
        return pt
    if pt.ndim == 4 and len(shape) == 4 and list(pt.transpose(0, 2, 3, 1).shape) == list(shape):
        return pt.transpose(0, 2, 3, 1)
    if _channels_last(list(pt.shape), list(shape)):  # e.g. a Conv1d [N,C,L] run as CONV_2D [N,1,L,C]
        return np.moveaxis(pt, 1, -1).reshape(shape)
    return pt.reshape(shape)


def _squeezed(shape) -> list[int]:
    return [int(d) for d in shape if d != 1]


def _channels_last(pt_shape: list[int], tfl_shape: list[int]) -> bool:
    """True when the TFLite tensor holds the PT2E one channels-last in another rank (size-1 dims aside)."""
    if len(pt_shape) < 3 or _squeezed(pt_shape) == _squeezed(tfl_shape):
        return False
    return _squeezed(pt_shape[:1] + pt_shape[2:] + pt_shape[1:2]) == _squeezed(tfl_shape)


def _to_pt(v: np.ndarray, pt_shape: list[int]) -> np.ndarray:
    """A TFLite value laid out like the PT2E activation (the inverse of ``_aligned``)."""
    if list(v.shape) != list(pt_shape) and v.ndim == 4 and len(pt_shape) == 4 \
            and list(v.transpose(0, 3, 1, 2).shape) == list(pt_shape):
        return np.ascontiguousarray(v.transpose(0, 3, 1, 2))
    if _channels_last(list(pt_shape), list(v.shape)):
        cl = pt_shape[:1] + pt_shape[2:] + pt_shape[1:2]
        return np.ascontiguousarray(np.moveaxis(v.reshape(cl), -1, 1))
    return v.reshape(pt_shape)


def _own_errors(run, x1: np.ndarray, tfl: dict[str, np.ndarray]) -> dict[str, float]:
    """Each matched PT2E activation computed from LiteRT's values of its inputs: max |diff| to LiteRT's own value.

    Every matched activation is replaced by LiteRT's value as the PT2E graph runs, so a layer is judged on the
    inputs the runtime actually gave it: rounding differences carried in from upstream do not count, a layer the
    converter or runtime computes differently does.
    """
    import torch
    gm = run.qat_module()
    errs: dict[str, float] = {}

    class Sub(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            src = _activation_q(n)
            name = src.args[0].name if src is not None else None
            if name in tfl:
                v = torch.from_numpy(_to_pt(tfl[name], list(out.shape))).to(out.dtype)
                errs[name] = max(errs.get(name, 0.0), float((out - v).abs().max()) / float(n.args[1]))
                out = v
            return out

    with torch.no_grad():
        Sub(gm).run(*(torch.from_numpy(x) for x in _tuple(x1)))
    return errs


def localise(artifact: Path, manifest: dict, run, x1: np.ndarray) -> dict:
    """Where LiteRT and the PT2E graph part, layer by layer, on one input.

    Two views per layer, in output steps: ``steps``, the end-to-end difference (what reached the layer, rounding
    carried from upstream included), and ``own_steps``, the difference when the PT2E layer gets LiteRT's inputs
    (what the layer itself computes differently). ``first_diverging`` is the first layer over LAYER_TOL_STEPS
    end to end; ``first_own_error`` the first layer over it on its own, the one to fix when there is one.
    """
    from ondevice.mcu.reader import read_graph
    from ondevice.runtimes.base import get_runtime
    tfl = artifact if artifact.suffix == ".tflite" else next(iter(sorted(artifact.glob("*.tflite"))), None)
    if tfl is None:
        return {"method": "none", "note": "layer localisation needs a .tflite (LiteRT intermediates)"}
    data = tfl.read_bytes()
    graph = read_graph(data, tfl.name)
    lm = get_runtime("litert").load(tfl, preserve_all_tensors=True)  # guarded: the file may be damaged
    lm.run([s.quantize(np.asarray(x).reshape(s.shape)) for s, x in zip(lm.inputs, _tuple(x1))])
    values = {t["index"]: t for t in lm.tensors()}
    acts = pt2e_activations(run, x1)
    ptr, layers, matched = 0, [], {}
    for op in graph.ops:
        for o in op.outputs:
            t = graph.tensors[o]
            if o not in values or t.scale is None or t.is_const:
                continue
            v = values[o]["spec"].dequantize(values[o]["value"])
            # the matching PT2E activation is the next one (within a short window) with the same size
            best = None
            for j in range(ptr, min(ptr + 6, len(acts))):
                a = _aligned(acts[j]["value"], list(v.shape))
                if a is None:
                    continue
                err = float(np.abs(a - v).max())
                if best is None or err < best[1]:
                    best = (j, err)
            if best is None:
                continue
            j, err = best
            ptr = j + 1
            matched[acts[j]["node"]] = v
            layers.append({"op_index": op.index, "op": op.opcode, "tflite_tensor": short_name(t.name),
                           "pt2e_node": acts[j]["node"], "shape": list(v.shape), "max_abs_diff": err,
                           "steps": round(err / float(t.scale[0]), 2)})
    own = _own_errors(run, x1, matched)
    for row in layers:  # own errors are in the PT2E activation's steps, the same scale as the TFLite tensor's
        row["own_steps"] = round(own.get(row["pt2e_node"], 0.0), 2)
    first = next((r for r in layers if r["steps"] > LAYER_TOL_STEPS), None)
    first_own = next((r for r in layers if r["own_steps"] > LAYER_TOL_STEPS), None)
    return {"method": "LiteRT experimental_preserve_all_tensors vs PT2E activations (matched by order and size); "
                      "own_steps: the PT2E layer fed LiteRT's inputs",
            "layers_compared": len(layers), "first_diverging": first, "first_own_error": first_own,
            "worst": max(layers, key=lambda r: r["steps"]) if layers else None,
            "worst_own": max(layers, key=lambda r: r["own_steps"]) if layers else None, "layers": layers}
