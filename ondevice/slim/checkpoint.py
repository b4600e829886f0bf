"""The slim run folder: the one hand-off from `slim` to every exporter and to `verify` (docs/CONTRACTS.md §3)."""
from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ondevice.errors import ConfigError
from ondevice.fsutil import atomic_path, write_json_atomic

RUN_FILES = ("recipe.json", "weights.pt", "qat.pt2", "calib.pt")
QUANTIZER_NAME = "ondevice-int8"


def default_run_dir() -> Path:
    from ondevice.models import get_recipe
    return get_recipe("mitsis").folder


@dataclass
class Run:
    path: Path
    recipe: dict

    @property
    def name(self) -> str:
        return self.recipe["name"]

    @property
    def labels(self) -> list[str]:
        return list(self.recipe["labels"])

    def float_model(self) -> torch.nn.Module:
        """The recipe module with the QAT-trained float weights (BN unfolded), in eval mode, softmax output."""
        model = build_model(self.recipe)
        state = torch.load(self.path / "weights.pt", map_location="cpu", weights_only=True)
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise ConfigError(f"{self.path / 'weights.pt'} does not match recipe {self.name!r}: {str(e)[:200]}",
                              "re-run `ondevice slim` for this run folder") from None
        return model.eval()

    def qat_module(self) -> torch.fx.GraphModule:
        """The converted PT2E INT8 model (quantize/dequantize ops): the reference every artifact is checked against."""
        import torchao.quantization.pt2e  # noqa: F401  registers quantized_decomposed ops torch.export.load needs
        try:
            ep = torch.export.load(str(self.path / "qat.pt2"))
        except Exception as e:  # corrupt or truncated archive
            raise ConfigError(f"cannot load {self.path / 'qat.pt2'}: {type(e).__name__}: {str(e)[:160]}",
                              "the run folder is damaged; re-run `ondevice slim`") from None
        from torchao.quantization.pt2e import move_exported_model_to_eval
        gm = ep.module()
        move_exported_model_to_eval(gm)
        return gm

    def example_input(self) -> tuple[torch.Tensor, ...]:
        """Old name of :meth:`example_inputs` (kept for callers written for one-input runs)."""
        return self.example_inputs()

    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        """One batch-1 float tensor per model input, in forward-parameter order."""
        return tuple(c[:1].clone() for c in self.calibration_inputs())

    def input_specs(self) -> list:
        """Float32 input specs as the QAT model takes them (batch 1), named after forward's parameters."""
        from ondevice.runtimes.base import TensorSpec
        specs = self.recipe.get("inputs") or [self.recipe["input"]]
        return [TensorSpec(name=s["name"], shape=[int(d) for d in s["shape"]], dtype=s.get("dtype", "float32"))
                for s in specs]

    def calibration_inputs(self) -> tuple[torch.Tensor, ...]:
        """The calibration set, one [N, ...] tensor per model input."""
        c = torch.load(self.path / "calib.pt", map_location="cpu", weights_only=True)
        return tuple(c) if isinstance(c, (list, tuple)) else (c,)

    def calibration(self) -> torch.Tensor:
        """The first input's calibration tensor [N, ...] (one-input callers)."""
        return self.calibration_inputs()[0]

    def quantizer(self):
        from ondevice.slim.quantizer import make_quantizer
        return make_quantizer(is_qat=False)

    @property
    def report(self) -> dict:
        p = self.path / "slim_report.json"
        return json.loads(p.read_text()) if p.exists() else {}


def build_model(recipe: dict) -> torch.nn.Module:
    from ondevice.models import get_recipe
    if recipe.get("user_model"):
        from ondevice.slim.lint import reapply_fixes
        from ondevice.models.user import load_user_model
        module = load_user_model(recipe["user_model"], n_classes=len(recipe["labels"])).module
        # --fix swaps keep the state_dict keys: without re-applying them the weights would load into GELUs
        reapply_fixes(module, recipe.get("lint_fixes_applied", []))
        return module
    r = get_recipe(recipe["name"])
    return r.build(n_classes=len(recipe["labels"]), **recipe.get("arch", {}))


def load_run(path: str | Path | None = None) -> Run:
    """Open a slim run folder (None: the shipped mitsis reference). Fails clearly on a missing or partial folder."""
    path = Path(path) if path is not None else default_run_dir()
    if not path.is_dir():
        raise ConfigError(f"model folder {path} does not exist",
                          "pass a folder written by `ondevice slim --out DIR`, or omit --model for the shipped mitsis")
    missing = [f for f in RUN_FILES if not (path / f).is_file()]
    if missing:
        raise ConfigError(f"model folder {path} is incomplete: missing {', '.join(missing)}",
                          "re-run `ondevice slim --out` for it (runs are written atomically, so this is not one)")
    try:
        recipe = json.loads((path / "recipe.json").read_text())
        for key in ("name", "labels", "input"):
            recipe[key]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ConfigError(f"{path / 'recipe.json'} is corrupt ({type(e).__name__}: {e})",
                          "re-run `ondevice slim` for this run folder") from None
    return Run(path=path, recipe=recipe)


def save_run(out: str | Path, recipe: dict, float_model: torch.nn.Module, converted: torch.fx.GraphModule,
             calib, report: dict) -> Path:
    """Write a complete run folder atomically: all files go to a temp folder that is renamed at the end.

    ``calib`` is one [N, ...] tensor, or a tuple of them for a model with several inputs (saved as a list).
    """
    out = Path(out)
    calibs = tuple(calib) if isinstance(calib, (list, tuple)) else (calib,)
    example = tuple(c[:1].clone() for c in calibs)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        (tmp / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")
        torch.save(float_model.state_dict(), tmp / "weights.pt")
        torch.export.save(torch.export.export(converted, example), str(tmp / "qat.pt2"))
        saved = [c.contiguous().clone() for c in calibs]
        torch.save(saved[0] if len(saved) == 1 else saved, tmp / "calib.pt")
        write_json_atomic(tmp / "slim_report.json", report)
        # keep files from a previous run that are not ours (e.g. a user's notes)
        if out.is_dir():
            for extra in out.iterdir():
                if not (tmp / extra.name).exists():
                    if extra.is_dir():
                        shutil.copytree(extra, tmp / extra.name)
                    else:
                        shutil.copy2(extra, tmp / extra.name)
    return out
