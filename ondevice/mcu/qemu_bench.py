"""Run a generated model on an emulated Cortex-M (QEMU) with the bare-metal runner in firmware/bench/.

Reports instructions per inference and per op (SysTick under ``-icount shift=0``, calibrated against a loop of
known length, so the unit is instructions, never cycles), stack high-water (painting) and the output bytes of
every vector, which ``verify`` compares with the TFLM interpreter.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ondevice.errors import ConfigError, ExportError, ToolMissingError, VerifyError
from ondevice.mcu.build import library_sources
from ondevice.mcu.library import FIRMWARE_DIR, read_summary

BENCH_DIR = FIRMWARE_DIR / "bench"


def _bench_port(board: str) -> tuple[Path, list[str]]:
    """(port folder, CPU flags) of the QEMU board the runner is built for: the same port.toml, port_config.h,
    link.ld and PORT_CFLAGS the agent firmware uses, so the two builds cannot drift."""
    from ondevice.boards import qemu_port_for_machine
    port = qemu_port_for_machine(board)
    mk = (port.path / "port.mk").read_text()
    m = re.search(r"^PORT_CFLAGS\s*:?=\s*(.+)$", mk, re.M)
    if m is None:
        raise ExportError(f"{port.path / 'port.mk'} sets no PORT_CFLAGS", "add the port's CPU flags there")
    return port.path, m.group(1).split()


@dataclass
class BenchResult:
    """What the runner printed, parsed. ``instructions`` are per inference (vector 0 and the max over vectors)."""
    board: str
    variant: str
    instructions_per_tick: float
    instructions: list[int]
    stack_bytes: int
    outputs: list[list[np.ndarray]]
    op_instructions: list[tuple[str, int]] = field(default_factory=list)
    status: list[int] = field(default_factory=list)


def _vectors_c(vectors: Sequence[Sequence[np.ndarray]]) -> str:
    parts, names = [], []
    for k, vec in enumerate(vectors):
        for i, arr in enumerate(vec):
            # Raw bytes of the array in its own dtype (int8 or float32 I/O): the runner memcpys them.
            vals = ", ".join(str(int(x)) for x in np.ascontiguousarray(arr).view(np.int8).reshape(-1))
            parts.append(f"static const int8_t od_bench_v{k}_{i}[] = {{{vals}}};")
            names.append(f"od_bench_v{k}_{i}")
    ptrs = ", ".join(names)
    return ("#include <stdint.h>\n" + "\n".join(parts) +
            f"\nconst uint32_t od_bench_n_vectors = {len(vectors)};\n"
            f"const int8_t *const od_bench_vectors[] = {{{ptrs}}};\n")


def build_bench_elf(lib_dir: str | Path, vectors: Sequence[Sequence[np.ndarray]], out: str | Path,
                    board: str = "mps2-an386", variant: str = "opt") -> Path:
    """Link the runner, the generated model and ``vectors`` (one array per model input, in its dtype) into an ELF."""
    gcc = "arm-none-eabi-gcc"
    if shutil.which(gcc) is None:
        raise ToolMissingError(f"{gcc} not found", "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi")
    try:
        port_dir, cpu = _bench_port(board)
    except ConfigError as e:
        raise ExportError(f"no bench runner for board {board!r}: {e.message}", e.hint) from None
    lib_dir, out = Path(lib_dir), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    vec_c = out.with_suffix(".vectors.c")
    vec_c.write_text(_vectors_c(vectors))
    common = FIRMWARE_DIR / "ports" / "common"
    flags = [*cpu, "-std=c99", "-O2", "-ffunction-sections", "-fdata-sections",
             "--specs=nano.specs", "-nostartfiles", "-Wl,--gc-sections", f"-T{port_dir / 'link.ld'}", f"-L{common}",
             f"-I{port_dir}", f"-I{common}", f"-I{lib_dir}", f"-I{lib_dir / 'kernels'}"]
    if variant == "ref":
        flags.append("-DOD_KERNELS_REFERENCE")
    srcs = [common / "cortexm_startup.c", BENCH_DIR / "bench_main.c", vec_c, *library_sources(lib_dir)]
    r = subprocess.run([gcc, *flags, "-o", str(out), *map(str, srcs)], capture_output=True, text=True)
    if r.returncode != 0:
        raise ExportError(f"bench build for {board} failed: {r.stderr.strip()[-800:]}", "report the compiler message")
    return out


def run_bench_elf(elf: str | Path, board: str, variant: str, output_specs: list[dict],
                  timeout_s: float = 300.0) -> BenchResult:
    """Boot ``elf`` in QEMU with ``-icount shift=0`` and parse the runner's report."""
    qemu = "qemu-system-arm"
    if shutil.which(qemu) is None:
        raise ToolMissingError(f"{qemu} not found", "apt-get install qemu-system-arm")
    cmd = [qemu, "-M", board, "-nographic", "-monitor", "none", "-serial", "stdio", "-icount", "shift=0",
           "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        raise VerifyError(f"QEMU {board} did not finish the benchmark in {timeout_s:.0f} s "
                          f"(last output: {(e.stdout or b'')[-200:]!r})", "the firmware may have faulted") from None
    text = r.stdout
    if "OD_BENCH end" not in text:
        raise VerifyError(f"QEMU {board} benchmark ended early: {text[-400:]!r} {r.stderr[-200:]!r}",
                          "check the board's memory map and the ELF")
    m = re.search(r"calib_instructions=(\d+) calib_ticks=(\d+)", text)
    ipt = int(m.group(1)) / int(m.group(2))
    instructions, outputs, status, stack = [], [], [], 0
    for mv in re.finditer(r"OD_BENCH vector=\d+ status=(\d+) ticks=(\d+) stack=(\d+) out=([0-9a-f,]*)", text):
        status.append(int(mv.group(1)))
        instructions.append(round(int(mv.group(2)) * ipt))
        stack = max(stack, int(mv.group(3)))
        outs = []
        for spec, hexs in zip(output_specs, mv.group(4).split(",")):
            outs.append(np.frombuffer(bytes.fromhex(hexs), spec.get("dtype", "int8")).reshape(spec["shape"]).copy())
        outputs.append(outs)
    ops = [(mo.group(1), round(int(mo.group(2)) * ipt))
           for mo in re.finditer(r"OD_BENCH op=\d+ name=(\S+) ticks=(\d+)", text)]
    return BenchResult(board, variant, ipt, instructions, stack, outputs, ops, status)


def bench_qemu(lib_dir: str | Path, vectors: Sequence, board: str = "mps2-an386",
               variant: str = "opt", timeout_s: float = 300.0) -> BenchResult:
    """Build and run the benchmark ELF for a generated library.

    ``vectors``: int8 arrays (single-input models) or, per vector, a list with one int8 array per model input.
    """
    summary = read_summary(lib_dir)
    n_in = len(summary["inputs"])
    vectors = [[v] if isinstance(v, np.ndarray) else list(v) for v in vectors]
    if any(len(v) != n_in for v in vectors):
        raise ExportError(f"the model has {n_in} inputs; every vector needs one array per input",
                          "pass a list of arrays per vector")
    with tempfile.TemporaryDirectory() as d:
        elf = build_bench_elf(lib_dir, vectors, Path(d) / "bench.elf", board, variant)
        res = run_bench_elf(elf, board, variant, summary["outputs"], timeout_s)
    if any(res.status):
        raise VerifyError(f"od_model_invoke failed on {board}: status {res.status}", "a kernel rejected a parameter")
    return res
