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
        from ondevice.runtimes.tflm import capture_fd2
        log: list[str] = []
        try:
            # XNNPACK's cpuinfo probe prints /sys lookups to C stderr at load; keep them unless loading fails
            with capture_fd2(2) as log:
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
