"""`ondevice slim`: lint, FP32 training, then INT8 QAT with PT2E. Runs as one process or under torchrun (DDP, gloo).

    ondevice slim --recipe mitsis --data data/synth --out runs/mitsis
    torchrun --nproc_per_node 2 --no-python ondevice slim --recipe mitsis --data data/synth --out runs/mitsis
"""
from __future__ import annotations

import contextlib
import copy
import os
import platform
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from ondevice import log
from ondevice.data.arrays import Arrays
from ondevice.errors import ConfigError, ConstraintError
from ondevice.slim.metrics import confusion, count_macs, int8_bytes, macro_f1

ALL_TARGETS = ("executorch", "tflite", "edgetpu", "coreml", "tflm", "mcu")


# ----------------------------------------------------------------------------------------------- distributed
class _Dist:
    """World info; a no-op outside torchrun."""

    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.active = self.world > 1
        if self.active and not dist.is_initialized():
            dist.init_process_group("gloo")  # CPU-only machines: gloo, not NCCL

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, idx: np.ndarray) -> np.ndarray:
        if not self.active:
            return idx
        n = len(idx) - len(idx) % self.world  # equal shards keep DDP's collectives in step
        return idx[:n][self.rank::self.world]

    def wrap(self, model: nn.Module) -> nn.Module:
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel as DDP
        return DDP(model, broadcast_buffers=True, find_unused_parameters=False)

    def barrier(self):
        if self.active:
            dist.barrier()

    def close(self):
        if self.active and dist.is_initialized():
            dist.destroy_process_group()


# ----------------------------------------------------------------------------------------------- data
def augment(x: torch.Tensor, g: torch.Generator, freq_mask: int, time_shift: int) -> torch.Tensor:
    """SpecAugment-style frequency masking and a random time shift (zero fill), per sample."""
    x = x.clone()
    b, _, t, f = x.shape
    if freq_mask > 0:
        w = torch.randint(0, freq_mask + 1, (b,), generator=g)
        f0 = torch.randint(0, f, (b,), generator=g)
        cols = torch.arange(f)
        mask = (cols[None] >= f0[:, None]) & (cols[None] < (f0 + w)[:, None])
        x = x.masked_fill(mask[:, None, None, :], 0.0)
    if time_shift > 0:
        s = torch.randint(-time_shift, time_shift + 1, (b,), generator=g)
        rows = torch.arange(t)
        src = rows[None] - s[:, None]
        valid = (src >= 0) & (src < t)
        src = src.clamp(0, t - 1)
        x = torch.gather(x, 2, src[:, None, :, None].expand(b, 1, t, f)) * valid[:, None, :, None]
    return x


# ----------------------------------------------------------------------------------------------- training
def _xs(x) -> tuple[torch.Tensor, ...]:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def predict(model: nn.Module, x, batch: int = 32) -> np.ndarray:
    """Argmax predictions in fixed-size batches (the last one padded): QAT graphs are traced at one batch size.

    ``x`` is one [N, ...] tensor or a tuple of them (one per model input)."""
    xs, outs = _xs(x), []
    with torch.no_grad():
        for i in range(0, len(xs[0]), batch):
            xb = [t[i:i + batch] for t in xs]
            n = len(xb[0])
            if n < batch:
                xb = [torch.cat([t, t[:1].expand(batch - n, *t.shape[1:])]) for t in xb]
            outs.append(model(*xb)[:n].argmax(-1).numpy())
    return np.concatenate(outs) if outs else np.zeros(0, dtype=np.int64)


def predict_b1(model, x) -> np.ndarray:
    """One sample at a time: converted batch-1 graphs are static-shaped."""
    xs = _xs(x)
    with torch.no_grad():
        return np.array([int(model(*(t[i:i + 1] for t in xs)).argmax(-1)) for i in range(len(xs[0]))])


def fit(model: nn.Module, train: Arrays, val: Arrays, target: str, n_classes: int, epochs: int, lr: float,
        cfg, dist_: _Dist, desc: str, seed: int, select_best: bool = True, set_mode=None, score=None,
        score_start: bool = False, history: list | None = None) -> nn.Module:
    """Train ``model`` on ``train.<target>`` with AdamW + cosine LR, label smoothing and augmentation.

    ``set_mode(model, train: bool)`` switches train/eval (PT2E graphs need torchao's helpers).
    ``score(model) -> float`` replaces the default validation macro-F1 as the selection score; with
    ``score_start`` the weights before the first update are a candidate too. ``history``, when given, receives
    every candidate's score in order.
    Returns the model with the best-scoring weights loaded (when ``select_best``).
    """
    set_mode = set_mode or (lambda m, t: m.train(t))
    y_val = getattr(val, target)
    if score is None:
        def score(m):
            return macro_f1(y_val.numpy(), predict(m, val.xs, cfg.batch_size), n_classes) if len(val) else 0.0
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError(f"{desc}: nothing to train (all parameters frozen)")
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, len(dist_.shard(np.arange(len(train)))) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(1, epochs * steps_per_epoch),
                                                pct_start=0.15)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    wrapped = dist_.wrap(model)
    g = torch.Generator().manual_seed(seed)
    y_all = getattr(train, target)
    best, best_state = -1.0, None
    if select_best and score_start:
        set_mode(model, False)
        best, best_state = score(model), copy.deepcopy(model.state_dict())
        if history is not None:
            history.append(best)
        if dist_.main:
            log.info(f"  {desc}: before training, val score {best:.4f}")
    with log.progress(desc, epochs) as advance:
        for epoch in range(epochs):
            set_mode(model, True)
            order = torch.randperm(len(train), generator=g).numpy()
            order = dist_.shard(order)
            losses = []
            order = np.resize(order, steps_per_epoch * cfg.batch_size)  # every step a full batch
            for i in range(steps_per_epoch):
                idx = torch.as_tensor(order[i * cfg.batch_size:(i + 1) * cfg.batch_size])
                xb = train.take(idx)
                if len(xb) == 1 and xb[0].dim() == 4:  # SpecAugment is for the one log-mel input
                    xb = (augment(xb[0], g, cfg.freq_mask, cfg.time_shift),)
                loss = loss_fn(wrapped(*xb), y_all[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                losses.append(loss.item())
            set_mode(model, False)
            f1 = score(model)
            if history is not None:
                history.append(f1)
            if select_best and f1 > best:
                best, best_state = f1, copy.deepcopy(model.state_dict())
            advance(1, f"loss {np.mean(losses):.3f} val F1 {f1:.3f}")
            if not log.console.is_terminal and dist_.main and (epoch == epochs - 1 or epoch % 5 == 0):
                log.info(f"  {desc}: epoch {epoch + 1}/{epochs} loss {np.mean(losses):.3f} val macro-F1 {f1:.3f}")
    if select_best and best_state is not None:
        model.load_state_dict(best_state)
    set_mode(model, False)
    return model


def _pt2e_mode(model, train: bool):
    from torchao.quantization.pt2e import move_exported_model_to_eval, move_exported_model_to_train
    (move_exported_model_to_train if train else move_exported_model_to_eval)(model)


def _convert_b1(model: nn.Module, prepared, calib):
    """Copy the QAT weights of ``prepared`` into ``model`` (in place) and convert a batch-1 INT8 graph from it.

    The batch-1 graph differs from the training graph (the attention block runs on 2-D tensors at batch 1, as the
    Edge TPU needs), so its activation ranges are re-observed on ``calib`` with the same quantizer; PT2E QAT
    observers are min/max, not learned, so this loses nothing QAT learned. ``prepared`` None is plain PTQ
    (``--ptq``): the model's own weights, calibrated on ``calib`` (a tensor or one tensor per input).
    """
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from ondevice.slim.quantizer import make_quantizer
    if prepared is not None:
        qat_state = {k: v for k, v in prepared.state_dict().items() if k in model.state_dict()}
        model.load_state_dict(qat_state, strict=False)
    model.eval()
    calib = _xs(calib)
    gm1 = torch.export.export(model, tuple(t[:1] for t in calib)).module()
    p1 = prepare_pt2e(gm1, make_quantizer(is_qat=False))
    with torch.no_grad():
        for i in range(len(calib[0])):
            p1(*(t[i:i + 1] for t in calib))
    converted = convert_pt2e(p1, fold_quantize=False)
    _pt2e_mode(converted, False)
    return converted


def qat(model: nn.Module, arrays: dict[str, Arrays], n_classes: int, cfg, dist_: _Dist, epochs: int, seed: int,
        calib_n: int = 128):
    """PT2E QAT on the batched graph, then a batch-1 convert from the QAT weights.

    Returns (float model with QAT weights, converted batch-1 INT8 model, calibration tensor, selection record).
    The QAT epoch kept is the one whose *converted* batch-1 INT8 graph scores best on the validation split, the
    observer-warmed weights before any QAT update included: what ships is selected on what ships.
    """
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    from ondevice.slim.quantizer import make_quantizer
    from ondevice.slim.usermodel import set_softmax
    model = copy.deepcopy(model)
    set_softmax(model, False)
    model.train()
    # exported at the batch size training and warm-up use, even when the train split is smaller than one batch
    example = tuple(t[torch.arange(cfg.batch_size) % len(t)].clone() for t in arrays["train"].xs)
    gm = torch.export.export(model, example).module()
    prepared = prepare_qat_pt2e(gm, make_quantizer(is_qat=True))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    for n, p in prepared.named_parameters():
        p.requires_grad_(n in trainable)
    set_softmax(model, True)
    calib = _calib(arrays, seed, calib_n)
    # Warm the fake-quant observers (moving averages) on clean train batches before the first update, so QAT
    # does not start from one batch's ranges.
    _pt2e_mode(prepared, True)
    g = torch.Generator().manual_seed(seed + 3)
    with torch.no_grad():
        for _ in range(min(50, max(1, len(arrays["train"]) // cfg.batch_size))):
            idx = torch.randint(0, len(arrays["train"]), (cfg.batch_size,), generator=g)
            prepared(*arrays["train"].take(idx))
    val = arrays["val"]

    def int8_val_f1(prep) -> float:
        conv = _convert_b1(copy.deepcopy(model), prep, calib)
        return macro_f1(val.y.numpy(), predict_b1(conv, val.xs), n_classes) if len(val) else 0.0

    scores: list[float] = []
    if epochs > 0:
        fit(prepared, arrays["train"], val, "y", n_classes, epochs, cfg.qat_lr, cfg, dist_,
            "INT8 QAT", seed + 1, select_best=True, set_mode=_pt2e_mode, score=int8_val_f1, score_start=True,
            history=scores)
    _pt2e_mode(prepared, False)
    converted = _convert_b1(model, prepared, calib)
    selection = {"score": "converted batch-1 INT8 macro-F1 on the validation split",
                 "candidates": ["before QAT updates"] + [f"QAT epoch {i}" for i in range(1, len(scores))],
                 "scores": [round(v, 6) for v in scores],
                 "kept": int(np.argmax(scores)) if scores else None}
    return model, converted, calib, selection


def pretrain_keyword_encoder(encoder: nn.Module, arrays: dict[str, Arrays], n_keywords: int, cfg, dist_: _Dist,
                             seed: int) -> tuple[nn.Module, float]:
    """Keyword spotting pre-training of the DS-CNN branch; returns the encoder and its test keyword accuracy."""
    has = {k: a.kw >= 0 for k, a in arrays.items()}  # clips with no keyword (-1) do not train the spotter
    if not has["train"].any():
        raise ConfigError("the keyword branch needs keyword labels, and no training clip has one",
                          "fill the `keyword` column of metadata.csv, or use a recipe without a keyword branch")
    sub = {k: Arrays(a.x[has[k]], a.y[has[k]], a.kw[has[k]]) for k, a in arrays.items()}
    for p in encoder.parameters():  # LateFusion froze it; it trains here, and is frozen again after
        p.requires_grad_(True)
    clf = nn.Sequential(encoder, nn.Linear(encoder.out_dim, n_keywords))
    fit(clf, sub["train"], sub["val"], "kw", n_keywords, cfg.pretrain_epochs, cfg.lr, cfg, dist_,
        "keyword branch", seed + 10)
    acc = float(np.mean(predict(clf, sub["test"].xs, cfg.batch_size) == sub["test"].kw.numpy()))
    return encoder, acc


# ----------------------------------------------------------------------------------------------- the command
def _lint(model: nn.Module, example, targets: Sequence[str], fix: bool):
    from ondevice.slim.lint import apply_fixes, lint
    report = lint(model, example, targets, quant_check=True)
    fixed: list[str] = []
    if fix and not all(report.ok(t) for t in targets):
        fixed = apply_fixes(model, report)
        for f in fixed:
            log.info(f"fixed: {f}")
        report = lint(model, example, targets, quant_check=True)
    bad = [t for t in targets if not report.ok(t)]
    if bad:
        raise ConstraintError(f"the model breaks device constraints for {', '.join(bad)}",
                              "--fix applied the safe fixes; change the model as listed above for the rest" if fix
                              else "apply the fixes listed above, or run with --fix for the safe ones",
                              details=report.format())
    return report, fixed


def _resolve_targets(targets: Sequence[str]) -> list[str]:
    ts = [p.strip() for t in targets or ["all"] for p in str(t).split(",") if p.strip()]  # tflite,mcu as in export
    if "all" in ts:
        return list(ALL_TARGETS)
    for t in ts:
        if t not in ALL_TARGETS:
            raise ConfigError(f"unknown target {t!r}", f"choose from {', '.join(ALL_TARGETS)} or all")
    return ts


def slim(recipe: str | None = None, model: str | None = None, data: str | Path | None = None,
         out: str | Path = "runs/mitsis", epochs: int | None = None, qat_epochs: int | None = None,
         targets: Sequence[str] = ("all",), fix: bool = False, seed: int = 0, ablations: bool = True,
         pretrain_epochs: int | None = None, ptq: bool = False) -> dict:
    """Lint, FP32-train, INT8-QAT and write ``out/`` (see docs/CONTRACTS.md §3). Returns the slim report.

    ``data`` is an audio corpus folder, a folder of .npz samples or ``path.py:make_dataset`` (the last two need a
    ``model``). ``ptq``: no training; the model's own weights are calibrated and converted (post-training quant).
    """
    from ondevice.slim.checkpoint import save_run
    from ondevice.slim.usermodel import check_output, set_softmax, slim_source
    t_start = time.time()
    data = _check_args(recipe, model, data, out)
    targets = _resolve_targets(targets)
    # Small convs gain nothing from intra-op threads, and OpenMP spin-waits make a loaded or DDP machine
    # ~10x slower (measured: 0.47 s/step at 1 thread vs 4.5 s/step at 2 under load). OMP_NUM_THREADS overrides.
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    dist_ = _Dist()
    torch.manual_seed(seed)  # same init on every rank; DDP also broadcasts it
    rec, build, arrays, labels, keywords, specs, user = slim_source(recipe, model, data)
    n_classes = len(labels)
    cfg = replace(rec.train, epochs=epochs if epochs is not None else rec.train.epochs,
                  qat_epochs=qat_epochs if qat_epochs is not None else rec.train.qat_epochs,
                  pretrain_epochs=pretrain_epochs if pretrain_epochs is not None else rec.train.pretrain_epochs)
    if ptq:
        cfg = replace(cfg, epochs=0, qat_epochs=0)
    net = build(n_classes=n_classes, **rec.arch)
    example = tuple(t[:1].clone() for t in arrays["test"].xs)
    if user is not None:
        check_output(net, example, n_classes, f"{user.name}")
    lint_report, fixed = _lint(net, example, targets, fix)

    report: dict = {"recipe": rec.name, "seed": seed, "world_size": dist_.world, "targets": targets,
                    "train_config": asdict(cfg), "mode": "ptq" if ptq else "qat",
                    "data": {"folder": str(data), **{k: len(v) for k, v in arrays.items()}}}
    if fixed:
        report["lint_fixes_applied"] = fixed
    kw_acc = None
    if rec.fusion:
        enc, kw_acc = pretrain_keyword_encoder(net.encoders["keyword"], arrays, len(keywords), cfg, dist_, seed)
        kw_state = copy.deepcopy(enc.state_dict())
        net = build(n_classes=n_classes, **rec.arch)
        net.encoders["keyword"].load_state_dict(kw_state)
    set_softmax(net, False)
    if not ptq:
        net = fit(net, arrays["train"], arrays["val"], "y", n_classes, cfg.epochs, cfg.lr, cfg, dist_, "FP32", seed)
    set_softmax(net, True)  # the deployed model outputs probabilities
    net.eval()
    fp32_pred = predict(net, arrays["test"].xs)
    y_test = arrays["test"].y.numpy()
    report["fp32_macro_f1"] = macro_f1(y_test, fp32_pred, n_classes)
    report["fused_macro_f1"] = report["fp32_macro_f1"] if rec.fusion else None
    if rec.fusion and ablations:
        report.update(_ablations(build, rec, kw_state, arrays, n_classes, cfg, dist_, seed, y_test))
        report["fusion_gain_pt"] = 100 * (report["fused_macro_f1"] - max(report["audio_only_macro_f1"],
                                                                         report["keyword_only_macro_f1"]))
    if kw_acc is not None:
        report["keyword_branch_test_accuracy"] = kw_acc

    float_model, converted, calib = _quantize(net, arrays, n_classes, cfg, dist_, seed, ptq, report)
    _int8_metrics(report, rec.fusion, converted, float_model, example, arrays["test"], fp32_pred, n_classes)
    report["constraints"] = lint_report.to_dict()
    report["constraint_warnings"] = lint_report.to_dict("warning")
    report["labels"] = labels
    report["versions"] = _versions()
    report["train_seconds"] = round(time.time() - t_start, 1)

    if dist_.main:
        save_run(out, _recipe_json(rec, labels, keywords, specs, model, fixed, data), float_model, converted,
                 calib, report)
    dist_.barrier()
    dist_.close()
    return report


def _check_args(recipe, model, data, out) -> str | Path:
    """Refuse what cannot run before any training; the data as a folder Path, or a ``path.py:fn`` string."""
    if recipe and model:
        raise ConfigError("pass either --recipe or --model, not both")
    if data is None:
        raise ConfigError("--data is required", "make a corpus with `ondevice data synth --out data/synth`, "
                                                "point at your own metadata.csv + WAV folder, or (with --model) a "
                                                "folder of .npz samples or path.py:make_dataset")
    data = data if ".py:" in str(data) else Path(data)
    from ondevice.fsutil import check_out
    check_out(out)  # before training: a bad --out once lost a finished run
    return data


def _quantize(net, arrays: dict, n_classes: int, cfg, dist_: _Dist, seed: int, ptq: bool, report: dict):
    """(float model, converted int8 model, calibration inputs): QAT, or with ``ptq`` calibration only."""
    if ptq:
        float_model, calib = net, _calib(arrays, seed)
        converted = _convert_b1(copy.deepcopy(net), None, calib)
        report["qat_selection"] = {"score": "none: --ptq calibrates the given weights, no training"}
    else:
        float_model, converted, calib, report["qat_selection"] = qat(net, arrays, n_classes, cfg, dist_,
                                                                     cfg.qat_epochs, seed)
    return float_model, converted, calib


def _int8_metrics(report: dict, fusion: bool, converted, float_model, example, test: Arrays, fp32_pred,
                  n_classes: int) -> None:
    """The int8 model's scores on the test split, against the float model's, and the model's size."""
    y_test = test.y.numpy()
    int8_pred = predict_b1(converted, test.xs)
    report["int8_macro_f1"] = macro_f1(y_test, int8_pred, n_classes)
    report["int8_minus_fp32_pt"] = 100 * (report["int8_macro_f1"] - report["fp32_macro_f1"])
    if fusion:
        report["fused_int8_macro_f1"] = report["int8_macro_f1"]
    report["int8_fp32_top1_agreement"] = float(np.mean(int8_pred == fp32_pred))
    report["confusion_int8"] = confusion(y_test, int8_pred, n_classes)
    report["params"] = int(sum(p.numel() for p in float_model.parameters()))
    report["macs"] = count_macs(float_model, example)
    report["int8_bytes"] = int8_bytes(float_model)


def _calib(arrays: dict, seed: int, n: int = 128) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed + 2)
    pick = torch.randperm(len(arrays["train"]), generator=g)[:n]
    return tuple(t.clone() for t in arrays["train"].take(pick))


def _recipe_json(rec, labels, keywords, specs, model, fixed, data) -> dict:
    """recipe.json: ``input`` (the first input, for one-input readers) and ``inputs`` (every input, in order)."""
    ins = ([{"name": s.name, "shape": list(s.shape), "dtype": "float32"} for s in specs] if specs
           else [{"name": "mel", "shape": [1, 1, 49, 40], "dtype": "float32"}])
    return {"name": rec.name, "labels": labels, "keywords": keywords, "input": ins[0], "inputs": ins,
            "frontend": None if specs else "log-mel", "arch": rec.arch, "quantizer": "ondevice-int8",
            **({"data": str(data)} if specs else {}),
            **({"user_model": str(model), "lint_fixes_applied": fixed} if model else {})}


def _ablations(build, rec, kw_state, arrays, n_classes, cfg, dist_, seed, y_test) -> dict:
    """Each branch of the fusion recipe trained alone: the fusion gain is measured, not assumed."""
    out = {}
    for branch in ("audio", "keyword"):
        torch.manual_seed(seed)
        single = build(n_classes=n_classes, **{**rec.arch, "branches": (branch,)})
        if branch == "keyword":
            single.encoders["keyword"].load_state_dict(kw_state)
        single.softmax = False
        single = fit(single, arrays["train"], arrays["val"], "y", n_classes, cfg.epochs, cfg.lr, cfg, dist_,
                     f"{branch}-only", seed)
        name = "audio_only_macro_f1" if branch == "audio" else "keyword_only_macro_f1"
        out[name] = macro_f1(y_test, predict(single, arrays["test"].xs), n_classes)
    return out


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version
    v = {"python": platform.python_version()}
    for d in ("ondevice", "torch", "torchao", "litert-torch", "executorch"):
        with contextlib.suppress(PackageNotFoundError):
            v[d] = version(d)
    return v
