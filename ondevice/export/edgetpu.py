"""edgetpu target: the fully int8 ``.tflite`` plus an op-by-op Edge TPU mapping pre-check.

The compiler maps ops in execution order until the first one it cannot take; everything after that runs on the
CPU. The pre-check applies the documented rules (``edgetpu_rules``) the same way. When ``edgetpu_compiler`` is on
PATH it is run too, and its log is parsed into the same report shape.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from ondevice import log
from ondevice.errors import ExportError, UnsupportedOpError
from ondevice.export import edgetpu_rules as rules
from ondevice.export.registry import Exporter, register
from ondevice.export.tflite import write_tflite_artifact
from ondevice.export.tflite_util import check_int8_source, convert_tflite
from ondevice.mcu.reader import Graph, read_graph

MAPPED, UNMAPPED, CPU_AFTER = "mapped", "unmapped", "cpu (after first unmapped op)"
CPU_EDGE = "cpu (float I/O edge)"


def _float_edge(graph: Graph, op) -> bool:
    """A float model input's QUANTIZE or a float output's DEQUANTIZE: the compiler leaves these on the CPU and maps
    the int8 graph between them (its logs list them as CPU ops beside a mapped body)."""
    if op.opcode == "QUANTIZE":
        return op.inputs[0] in graph.inputs and graph.tensors[op.inputs[0]].dtype == "float32"
    return op.opcode == "DEQUANTIZE" and op.outputs[0] in graph.outputs



def _tname(t) -> str:
    """Tensor name for a message: converter names can be whole Python qualnames, so long ones become #index."""
    return repr(t.name) if t.name and len(t.name) <= 40 else f"#{t.index}"


def _tensor_problem(graph: Graph, op) -> str | None:
    """General requirements: 8-bit activations, static shapes, at most 3 innermost dims > 1."""
    for i in op.inputs + op.outputs:
        if i < 0:
            continue
        t = graph.tensors[i]
        if not t.is_const and t.dtype not in ("int8", "uint8"):
            return f"tensor {_tname(t)} is {t.dtype.upper()}; the Edge TPU takes only 8-bit tensors"
        if not t.is_const and any(d < 0 for d in t.shape):
            return f"tensor {_tname(t)} has a dynamic shape {list(t.shape)}"
        if not t.is_const:
            big = [k for k, d in enumerate(t.shape) if d > 1]
            if len(big) > rules.MAX_NON1_DIMS:
                return f"tensor {_tname(t)} {list(t.shape)} has {len(big)} dims > 1 (at most {rules.MAX_NON1_DIMS})"
            if big and big[0] < len(t.shape) - rules.MAX_NON1_DIMS:
                return f"tensor {_tname(t)} {list(t.shape)}: only the 3 innermost dims may be > 1"
    return None


def precheck(graph: Graph) -> dict:
    """Op-by-op prediction: each op is mapped, unmapped (with the rule it breaks), or on CPU after the first unmapped."""
    rows, first = [], None
    for op in graph.ops:
        if first is not None:
            rows.append({"index": op.index, "op": op.opcode, "status": CPU_AFTER,
                         "why": f"after op {first['index']} {first['op']}, the rest of the graph runs on the CPU"})
            continue
        if _float_edge(graph, op):
            rows.append({"index": op.index, "op": op.opcode, "status": CPU_EDGE,
                         "why": "float input/output conversion at the graph edge stays on the CPU"})
            continue
        why = None
        if op.opcode not in rules.SUPPORTED_OPS:
            why = rules.NOT_SUPPORTED_HINTS.get(op.opcode, "not on the Edge TPU supported-op list")
        else:
            why = _tensor_problem(graph, op)
            if why is None and op.opcode in rules.OP_CHECKS:
                why = rules.OP_CHECKS[op.opcode](graph, op)
        if why is None:
            row = {"index": op.index, "op": op.opcode, "status": MAPPED, "why": ""}
            caution = rules.CAUTIONS.get(op.opcode)
            note = caution(graph, op) if caution else None
            if note:
                row["caution"] = note
            rows.append(row)
        else:
            row = {"index": op.index, "op": op.opcode, "status": UNMAPPED, "why": why}
            rows.append(row)
            first = row
    return _summary(rows, source="pre-check (documented rules)")


def _summary(rows: list[dict], source: str) -> dict:
    mapped = Counter(r["op"] for r in rows if r["status"] == MAPPED)
    unmapped = Counter(r["op"] for r in rows if r["status"] != MAPPED)
    n = len(rows)
    return {"source": source, "ops": rows, "mapped": dict(mapped), "unmapped": dict(unmapped),
            "mapped_fraction": (sum(mapped.values()) / n) if n else 1.0,
            "first_unmapped": next((r for r in rows if r["status"] == UNMAPPED), None),
            "cautions": [r for r in rows if r.get("caution")]}


# Lines of the compiler's `-s` operation table: "<OP>   <count>   <status text>".
_TABLE_RE = re.compile(r"^([A-Z][A-Z0-9_]+)\s+(\d+)\s+(.+?)\s*$")
_NUM_RE = {
    "edgetpu_ops": re.compile(r"Number of operations that will run on Edge TPU:\s*(\d+)"),
    "cpu_ops": re.compile(r"Number of operations that will run on CPU:\s*(\d+)"),
    "total_ops": re.compile(r"Total number of operations:\s*(\d+)"),
    "subgraphs": re.compile(r"Number of Edge TPU subgraphs:\s*(\d+)"),
}


def parse_compiler_log(text: str) -> dict:
    """Parse ``edgetpu_compiler -s`` output into the pre-check report shape (per op type, with the status text)."""
    version = re.search(r"Edge TPU Compiler version\s+(\S+)", text)
    rows = []
    in_table = False
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("Operator") and "Status" in s:
            in_table = True
            continue
        if not in_table or not s:
            continue
        m = _TABLE_RE.match(s)
        if not m:
            if rows:
                in_table = False
            continue
        op, count, status = m.group(1), int(m.group(2)), m.group(3)
        ok = status.lower().startswith("mapped to edge tpu")
        for _ in range(count):
            rows.append({"index": None, "op": op, "status": MAPPED if ok else UNMAPPED, "why": "" if ok else status})
    rep = _summary(rows, source="edgetpu_compiler")
    rep["compiler_version"] = version.group(1) if version else None
    rep["compiled"] = bool(re.search(r"Model compiled successfully|Compilation succeeded", text))
    for k, rx in _NUM_RE.items():
        m = rx.search(text)
        rep[k] = int(m.group(1)) if m else None
    if rep["total_ops"] and rep["edgetpu_ops"] is not None:
        rep["mapped_fraction"] = rep["edgetpu_ops"] / rep["total_ops"]
    return rep


def run_compiler(tflite: Path, out_dir: Path, compiler: str) -> tuple[dict, Path | None]:
    """Run edgetpu_compiler on ``tflite``; returns (parsed report, compiled model path or None)."""
    try:
        p = subprocess.run([compiler, "-s", "-o", str(out_dir), str(tflite)], capture_output=True, text=True,
                           timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ExportError(f"edgetpu_compiler did not run: {type(e).__name__}: {e}",
                          "check the compiler install (edgetpu_compiler --version)") from None
    rep = parse_compiler_log(p.stdout + "\n" + p.stderr)
    rep["returncode"] = p.returncode
    compiled = out_dir / (tflite.stem + "_edgetpu.tflite")
    if p.returncode != 0 or not compiled.is_file():
        last = next((ln.strip() for ln in reversed((p.stdout + "\n" + p.stderr).splitlines()) if ln.strip()), "")
        raise ExportError(f"edgetpu_compiler failed (exit {p.returncode}): {last[:200]}",
                          "run it by hand on the .tflite for the full log; fix the model or drop --target edgetpu")
    return rep, compiled


def compiler_ops(rep: dict) -> dict:
    """Per op type: how many run on the Edge TPU and how many on the CPU (with the compiler's reasons)."""
    on_tpu, on_cpu, why = Counter(), Counter(), {}
    for r in rep["ops"]:
        if r["status"] == MAPPED:
            on_tpu[r["op"]] += 1
        else:
            on_cpu[r["op"]] += 1
            why.setdefault(r["op"], r["why"])
    return {"edgetpu_ops": dict(on_tpu), "cpu_ops": dict(on_cpu), "cpu_reasons": why,
            "edgetpu_op_count": rep.get("edgetpu_ops"), "cpu_op_count": rep.get("cpu_ops")}


def check_compiler_vs_precheck(pre: dict, comp: dict, allow: bool) -> None:
    """The compiler is the truth: fewer ops on the Edge TPU than the pre-check predicted fails, naming the ops."""
    predicted = sum(1 for r in pre["ops"] if r["status"] != MAPPED)
    cpu = comp["cpu_op_count"] if comp["cpu_op_count"] is not None else sum(comp["cpu_ops"].values())
    if cpu <= predicted:
        return
    named = ", ".join(f"{op} x{n} ({comp['cpu_reasons'][op]})" for op, n in comp["cpu_ops"].items())
    msg = f"edgetpu_compiler runs {cpu} op(s) on the CPU where the pre-check predicted {predicted}: {named}"
    if allow:
        log.warn(f"edgetpu: {msg}")
        return
    raise UnsupportedOpError(msg, "rewrite those layers in mappable ops, export --target tflite for a CPU-only "
                                  "model, or pass --allow-cpu-ops to keep the partly mapped model")


def format_report(rep: dict) -> str:
    """A short human table: one line per op in order, then the totals."""
    lines = [f"Edge TPU mapping ({rep['source']}): {rep['mapped_fraction']:.0%} of {len(rep['ops'])} ops mapped"]
    for r in rep["ops"]:
        extra = f"  ({r['why']})" if r["why"] else (f"  [caution: {r['caution']}]" if r.get("caution") else "")
        idx = "" if r["index"] is None else f"{r['index']:>3} "
        lines.append(f"  {idx}{r['op']:<22} {r['status']}{extra}")
    return "\n".join(lines)


@register("edgetpu", extension=".tflite", quant="int8")
class EdgeTPUExporter(Exporter):
    """Fully int8 TFLite checked op by op against the Edge TPU rules (and compiled when edgetpu_compiler exists)."""

    # An Edge TPU model that falls back to the CPU is slow in ways users miss: refuse it unless asked
    # (here, or with ONDEVICE_EDGETPU_ALLOW_CPU=1).
    allow_cpu_fallback = False

    sources = ("run", "tflite")

    def precheck_source(self, run) -> dict:
        """The op-by-op mapping pre-check; a float model, or an op that would fall back to the CPU, is refused here."""
        data = convert_tflite(run)
        name = self.artifact_name(run.name)
        rep = precheck(read_graph(data, name))
        allow = self.allow_cpu_fallback or os.environ.get("ONDEVICE_EDGETPU_ALLOW_CPU") == "1"
        if rep["first_unmapped"] is not None and not allow:
            f = rep["first_unmapped"]
            after = sum(1 for r in rep["ops"] if r["status"] == CPU_AFTER)
            raise UnsupportedOpError(
                f"op {f['index']} {f['op']} cannot run on the Edge TPU: {f['why']} "
                f"({after} later ops would fall back to the CPU too)",
                "rewrite that layer in mappable ops (see ondevice/export/edgetpu_rules.py), "
                "export --target tflite for a CPU-only model, or set ONDEVICE_EDGETPU_ALLOW_CPU=1 to accept the fallback")
        check_int8_source(data, name, self.name)  # with the fallback allowed, float compute is still refused
        return rep

    def export(self, run, out_dir: Path) -> Path:
        out_dir = Path(out_dir)
        data = convert_tflite(run)
        name = self.artifact_name(run.name)
        rep = self.precheck_source(run)
        allow = self.allow_cpu_fallback or os.environ.get("ONDEVICE_EDGETPU_ALLOW_CPU") == "1"
        if rep["first_unmapped"] is not None:  # allowed: say so
            f = rep["first_unmapped"]
            log.warn(f"edgetpu: op {f['index']} {f['op']} and everything after it will run on the CPU: {f['why']}")
        log.info(f"edgetpu: pre-check predicts {sum(rep['mapped'].values())}/{len(rep['ops'])} ops mapped "
                 f"({rep['mapped_fraction']:.0%}); op-by-op report in the manifest (edgetpu_precheck)")
        for c in rep["cautions"]:
            log.warn(f"edgetpu: op {c['index']} {c['op']}: {c['caution']}")
        compiler = shutil.which("edgetpu_compiler")
        compiler_rep, compiled_name = None, None
        if compiler is None:
            log.info("edgetpu: edgetpu_compiler not on PATH; wrote the pre-check report only")
        else:
            with tempfile.TemporaryDirectory() as d:
                src = Path(d) / Path(name).stem
                src = src.with_suffix(".tflite")
                src.write_bytes(data)
                compiler_rep, compiled = run_compiler(src, Path(d), compiler)
                compiler_rep.update(compiler_ops(compiler_rep))
                check_compiler_vs_precheck(rep, compiler_rep, allow)
                from ondevice.fsutil import write_bytes_atomic
                dest = out_dir / compiled.name
                write_bytes_atomic(dest, compiled.read_bytes())
                compiled_name = dest.name
        # what the manifest calls mapped comes from the compiler when it ran, else from the pre-check
        final = compiler_rep if compiler_rep is not None else rep
        delegation = {"mapped": final["mapped"], "unmapped": final["unmapped"],
                      "mapped_fraction": final["mapped_fraction"], "first_unmapped": final["first_unmapped"],
                      "source": final["source"]}
        return write_tflite_artifact(
            self, run, out_dir, data, check=lambda g, n: check_int8_source(data, n, self.name),
            delegation=delegation, edgetpu_precheck=rep,
            edgetpu_compiler=compiler_rep if compiler_rep is not None else "not run: edgetpu_compiler not on PATH",
            edgetpu_compiled_model=compiled_name)
