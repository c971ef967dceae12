"""The one training loop: every task, every stage, single process or DDP.

:func:`train` runs a recipe and returns a result dict; ``leannets train``, ``leannets compare`` and
``leannets reproduce`` all call it. A run folder holds ``recipe.yaml`` (fully resolved),
``metrics.jsonl`` / ``metrics.csv`` (one row per epoch), ``last.pt`` / ``best.pt`` /
``epoch_NNNN.pt`` checkpoints and ``result.json``.

Determinism: data order and augmentation depend only on (seed, stage, epoch, step) and every RNG
state is checkpointed, so on CPU a run killed at any point and resumed from ``last.pt`` ends with
bit-identical weights to an uninterrupted run.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from leannets._io import atomic_write_json, atomic_write_text, folder_lock, remove_orphan_temps
from leannets._log import STDERR, ensure_console
from leannets.config import Recipe, StageConfig
from leannets.data import DataSplits, make_loader
from leannets.data.loader import derive_seed, describe_preprocessing

from .allocator import allocator_state, keep_freed_memory
from .amp import AMP_DTYPES, CPU_BF16_MIN_GAIN, bf16_step_gain, fixed_amp
from .checkpoint import (FORMAT, VERSION, capture_rng, copy_checkpoint, load_checkpoint, load_model, restore_rng,
                         save_checkpoint, unwrap_model)
from .distributed import (DistInfo, broadcast_object, cleanup_distributed, convert_sync_bn, init_distributed,
                          is_distributed)
from .memory import check_training_memory
from .optim import LRSchedule, ModelEma, build_optimizer
from .recipe import apply_overrides, dump_recipe, load_recipe, recipe_diff, stage_configs, validate_recipe
from .task import Task, create_task

_LOG = logging.getLogger(__name__)

__all__ = ["train", "evaluate_checkpoint", "NonFiniteLossError", "resolve_device", "data_info_of", "Trainer",
           "StageRun"]


#: On CUDA, reading a step's finite flag back stalls the device queue every step. With ``train.on_nonfinite: stop``
#: (no GradScaler, no DDP) the flags of this many steps are combined on the device and read once; a non-finite step
#: stops the run at the next read (or at the epoch's end), and no checkpoint is written from a non-finite state
#: (:meth:`Trainer._checkpoint` checks every tensor), so the last checkpoint stays the last finite one.
FINITE_CHECK_EVERY = 50


class NonFiniteLossError(ValueError):
    """The training loss or gradient became NaN/inf; the message names stage, epoch and step."""


@dataclass
class LoopState:
    stage: int = 0
    epoch: int = 0
    step: int = 0
    global_step: int = 0
    opt_stage: int = -1
    best: float | None = None
    best_where: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    sums: dict[str, float] = field(default_factory=dict)
    last_metrics: dict[str, float] = field(default_factory=dict)
    amp: dict[str, str] = field(default_factory=dict)  # stage index -> the precision it trains in


def resolve_device(name: str, dist_info: DistInfo | None = None) -> torch.device:
    """``auto`` → CUDA (this rank's GPU) when available, else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"train.device={name!r} but CUDA is not available")
        if dev.index is None:
            dev = torch.device("cuda", dist_info.local_rank if dist_info else torch.cuda.current_device())
    return dev


_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def data_info_of(splits: Any) -> dict[str, Any]:
    """What a checkpoint needs to rebuild the model and normalise inputs."""
    return {"name": getattr(splits, "name", ""), "num_classes": int(getattr(splits, "num_classes", 0) or 0),
            "in_chans": int(getattr(splits, "in_chans", 3)),
            "input_size": list(getattr(splits, "input_size", ()) or ()),
            "mean": [float(v) for v in (getattr(splits, "mean", None) or ())],
            "std": [float(v) for v in (getattr(splits, "std", None) or ())],
            "class_names": list(getattr(splits, "class_names", None) or [])}


def _seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _apply_freeze(model: nn.Module, prefixes: list[str], base_trainable: dict[str, bool]) -> list[nn.Module]:
    """Set requires_grad by the stage's prefixes; return the frozen modules (kept in eval mode)."""
    names = [n for n, _ in model.named_parameters()]
    modules = dict(model.named_modules())
    for prefix in prefixes:
        if not any(n.startswith(prefix) for n in names) and not any(m.startswith(prefix) for m in modules if m):
            tops = sorted({n.split(".")[0] for n in names})
            raise ValueError(f"stage freeze prefix {prefix!r} matches no module of the model; "
                             f"top-level modules: {', '.join(tops)}")
    for n, p in model.named_parameters():
        p.requires_grad_(base_trainable.get(n, True) and not any(n.startswith(pre) for pre in prefixes))
    return [m for name, m in modules.items() if name and any(name.startswith(pre) for pre in prefixes)]


def _all_finite(*states: Any) -> bool:
    """Whether every floating-point tensor in (nested) state dicts is finite."""
    stack = list(states)
    while stack:
        item = stack.pop()
        if isinstance(item, torch.Tensor):
            if item.is_floating_point() and not bool(torch.isfinite(item).all()):
                return False
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return True


def _grad_norm(params: Iterable[nn.Parameter]) -> torch.Tensor:
    """Global 2-norm of the gradients, without touching them (``clip_grad_norm_`` would rescale them)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    get_total_norm = getattr(nn.utils, "get_total_norm", None)  # torch >= 2.6
    if get_total_norm is not None:
        return get_total_norm(grads)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.detach()) for g in grads]))


def _rows_to_csv(rows: list[dict[str, Any]]) -> str:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: r.get(k, "") for k in keys})
    return buf.getvalue()


def _progress_enabled(cfg_value: bool | None) -> bool:
    if cfg_value is not None:
        return cfg_value
    return sys.stderr.isatty()


class _TBWriter:
    """TensorBoard scalars when ``tensorboard`` is installed; a no-op otherwise."""

    def __init__(self, out_dir: Path | None) -> None:
        self.writer = None
        if out_dir is None:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter  # type: ignore  # optional: needs tensorboard
        except Exception:  # noqa: BLE001 - optional dependency
            return
        self.writer = SummaryWriter(str(out_dir / "tb"))

    def log(self, row: Mapping[str, Any], step: int) -> None:
        if self.writer is None:
            return
        for k, v in row.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                self.writer.add_scalar(k, v, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@dataclass
class StageRun:
    """Everything one stage's loop needs, built once by :meth:`Trainer._setup_stage`."""

    index: int
    cfg: StageConfig
    task: Task
    splits: DataSplits
    frozen: list[nn.Module]
    train_loader: Any
    eval_loader: Any
    val_loader: Any | None
    steps_per_epoch: int
    optimizer: torch.optim.Optimizer
    sched: LRSchedule
    scaler: Any
    autocast: Callable[[], Any]
    train_model: nn.Module

    @property
    def name(self) -> str:
        return self.cfg.stage.name

    @property
    def epochs(self) -> int:
        return self.cfg.train.epochs


@dataclass
class _EpochSums:
    """Running per-epoch sums on the device (restored from ``LoopState.sums`` when resuming mid-epoch)."""

    sums: dict[str, torch.Tensor]
    n_seen: float
    n_start: float
    elapsed_before: float
    skipped: int = 0
    t0: float = field(default_factory=time.perf_counter)


class Trainer:
    """Runs all stages of a resolved recipe; see :func:`train`."""

    def __init__(self, recipe: Recipe, out_dir: Path | None, resume_ckpt: dict[str, Any] | None = None,
                 verbose: bool = True, progress: bool | None = None) -> None:
        self.recipe = recipe
        self.stages = stage_configs(recipe, validate=False)
        self.seed = recipe.seed
        self.dist = init_distributed(recipe.train.device)
        self._owns_dist = self.dist.enabled
        self.device = resolve_device(recipe.train.device, self.dist)
        if out_dir is not None and self.dist.enabled:
            out_dir = Path(str(broadcast_object(str(out_dir))))
        self.out_dir = out_dir
        self.verbose = verbose and self.dist.is_main
        if self.verbose:
            ensure_console()
        self.progress_override = progress
        self.resume_ckpt = resume_ckpt
        self.state = LoopState()
        self._pending_finite: torch.Tensor | None = None  # combined finite flags not read back yet (CUDA)
        self._data_cache: dict[str, DataSplits] = {}
        self.eval_samples: int | None = None  # size of the last stage's evaluation split
        self.tb = _TBWriter(out_dir if self.dist.is_main else None)
        if recipe.train.threads:
            torch.set_num_threads(recipe.train.threads)
        if recipe.train.allocator == "keep":
            keep_freed_memory()
        if recipe.train.deterministic and self.device.type == "cuda":
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

    # -- helpers -------------------------------------------------------------------------------------
    def log(self, msg: str) -> None:
        if self.verbose:
            _LOG.info(msg)

    def _splits(self, task: Task, cfg: StageConfig) -> DataSplits:
        key = json.dumps(cfg.data.to_dict(), sort_keys=True, default=str)
        if key not in self._data_cache:
            self._data_cache[key] = task.build_data()
        return self._data_cache[key]

    def _loader(self, split: Any, cfg: StageConfig, splits: DataSplits, train: bool, stage: int) -> Any:
        return make_loader(split, cfg.data, train=train, device=self.device, seed=derive_seed(self.seed, stage),
                           mean=getattr(splits, "mean", None), std=getattr(splits, "std", None),
                           rank=self.dist.rank, world_size=self.dist.world_size,
                           channels_last=self._channels_last(cfg), dtype=_DTYPES[cfg.train.dtype],
                           max_steps=cfg.train.max_steps_per_epoch if train else None)

    def _channels_last(self, cfg: StageConfig) -> bool:
        v = cfg.train.channels_last
        return self.device.type == "cuda" if v is None else v

    # -- model -----------------------------------------------------------------------------------------
    def build_model(self) -> None:
        cfg0 = self.stages[0]
        _seed_all(self.seed)
        task0 = create_task(cfg0)
        splits0 = self._splits(task0, cfg0)
        self.data_info = data_info_of(splits0)
        prep = describe_preprocessing(splits0, cfg0.data)
        if prep:
            self.data_info["preprocessing"] = prep
            if self.verbose:
                _LOG.info("preprocessing: " + "; ".join(f"{k}: {v}" for k, v in prep.items()))
        shape = tuple(getattr(splits0, "input_size", ()) or ())
        if len(shape) == 3:  # refuse a run that cannot fit before it is killed (restoration: eval images differ)
            check_training_memory(lambda: task0.build_model(splits0), shape,
                                  max(1, cfg0.data.batch_size // self.dist.world_size), self.device, cfg0.model.name)
        model = task0.build_model(splits0)
        init = cfg0.model.init_checkpoint
        if init:
            ck = load_checkpoint(init)
            try:
                model.load_state_dict(ck["ema"] if ck.get("ema") is not None else ck["model"])
            except RuntimeError as err:
                raise ValueError(f"model.init_checkpoint {init}: weights do not fit "
                                 f"{cfg0.model.name!r}: {str(err).splitlines()[0]}") from err
        if cfg0.model.sync_bn and self.dist.enabled:
            model = convert_sync_bn(model, self.device)
        model = model.to(self.device, _DTYPES[cfg0.train.dtype])
        if self._channels_last(cfg0):
            model = model.to(memory_format=torch.channels_last)
        self.base_trainable = {n: p.requires_grad for n, p in model.named_parameters()}
        self.model = model
        self.ema: ModelEma | None = None

    # -- checkpoints -----------------------------------------------------------------------------------
    def _gather_rng(self) -> list[dict[str, Any]]:
        mine = capture_rng()
        if not is_distributed():
            return [mine]
        out: list[Any] = [None] * self.dist.world_size
        torch.distributed.all_gather_object(out, mine)
        return out

    def _checkpoint(self, run: StageRun, is_best: bool = False, keep_copy: str | None = None) -> None:
        rng = self._gather_rng()
        if self.out_dir is None:
            return
        # Every rank checks its (identical) state, so under DDP all of them stop together.
        if not _all_finite(unwrap_model(self.model).state_dict(), run.optimizer.state_dict()):
            raise NonFiniteLossError(
                f"the weights or optimizer state became non-finite by stage {run.name!r} epoch {self.state.epoch} "
                f"(global step {self.state.global_step}); nothing was written, the last good (finite) checkpoint "
                f"is kept. Lower optim.lr (now {run.cfg.optim.lr:g}) or set train.grad_clip")
        if not self.dist.is_main:
            return
        s = self.state
        ckpt = {
            "format": FORMAT, "version": VERSION, "torch_version": str(torch.__version__),
            "recipe": self.recipe.to_dict(), "data_info": self.data_info,
            "model": unwrap_model(self.model).state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": run.optimizer.state_dict(), "schedule": run.sched.state_dict(),
            "scaler": run.scaler.state_dict() if run.scaler is not None else None,
            "rng": rng, "world_size": self.dist.world_size,
            "loop": {"stage": s.stage, "epoch": s.epoch, "step": s.step, "global_step": s.global_step,
                     "opt_stage": s.opt_stage, "amp": s.amp},
            "best": {"value": s.best, **s.best_where}, "history": s.history, "sums": s.sums,
            "metrics": s.last_metrics,
        }
        # best.pt / the kept epoch copy are written BEFORE last.pt: a kill in between resumes from the previous
        # last.pt, re-runs the step and rewrites them; the other order would lose them for good.
        copies = ([self.out_dir / "best.pt"] if is_best else []) + ([self.out_dir / keep_copy] if keep_copy else [])
        if not copies:
            save_checkpoint(ckpt, self.out_dir / "last.pt")
            return
        first = save_checkpoint(ckpt, copies[0])
        for path in copies[1:] + [self.out_dir / "last.pt"]:
            copy_checkpoint(first, path)

    def _restore(self, ckpt: dict[str, Any]) -> None:
        unwrap_model(self.model).load_state_dict(ckpt["model"])
        loop = ckpt["loop"]
        self.state = LoopState(stage=loop["stage"], epoch=loop["epoch"], step=loop["step"],
                               global_step=loop["global_step"], opt_stage=loop["opt_stage"],
                               best=ckpt["best"].get("value"),
                               best_where={k: v for k, v in ckpt["best"].items() if k != "value"},
                               history=list(ckpt["history"]), sums=dict(ckpt.get("sums") or {}),
                               last_metrics=dict(ckpt.get("metrics") or {}), amp=dict(loop.get("amp") or {}))
        if ckpt.get("ema") is not None:
            self._ema_state = ckpt["ema"]

    def _write_metrics(self) -> None:
        if not self.dist.is_main or self.out_dir is None:
            return
        rows = self.state.history
        atomic_write_text(self.out_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        atomic_write_text(self.out_dir / "metrics.csv", _rows_to_csv(rows))

    # -- loop ------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        t_start = time.perf_counter()
        wall_start = time.time()
        self.build_model()
        self._ema_state = None
        if self.resume_ckpt is not None:
            self._restore(self.resume_ckpt)
            if self.dist.is_main and self.out_dir is not None:
                remove_orphan_temps(self.out_dir, older_than=wall_start)
        if self.dist.is_main and self.out_dir is not None:
            atomic_write_text(self.out_dir / "recipe.yaml", dump_recipe(self.recipe))
        final: dict[str, float] = dict(self.state.last_metrics)
        try:
            for stage_idx in range(self.state.stage, len(self.stages)):
                final = self._run_stage(stage_idx)
        finally:
            self.tb.close()
        result = self._result(final, time.perf_counter() - t_start)
        if self.dist.is_main and self.out_dir is not None:
            atomic_write_json(self.out_dir / "result.json", result)
        if self._owns_dist:
            cleanup_distributed()
        return result

    def _eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def _setup_stage(self, stage_idx: int) -> StageRun:
        """Task, data, loaders, optimizer, schedule, EMA and the (DDP/compiled) training model of one stage."""
        cfg = self.stages[stage_idx]
        task = create_task(cfg)
        splits = self._splits(task, cfg)
        frozen = _apply_freeze(unwrap_model(self.model), cfg.stage.freeze, self.base_trainable)
        train_loader = self._loader(splits.train, cfg, splits, True, stage_idx)
        eval_loader = self._loader(splits.eval, cfg, splits, False, stage_idx)
        val_loader = self._loader(splits.val, cfg, splits, False, stage_idx) if getattr(splits, "val", None) \
            is not None else None
        spe = len(train_loader)
        if spe < 1:
            raise ValueError(f"stage {cfg.stage.name!r}: the training split ({train_loader.num_samples} "
                             f"samples) is too small for one batch per process")
        optimizer = build_optimizer(unwrap_model(self.model), cfg.optim)
        sched = LRSchedule(optimizer, cfg.schedule, cfg.optim.lr, cfg.train.epochs * spe, spe)
        amp_dtype = AMP_DTYPES[self._amp(cfg, stage_idx, splits)]
        if amp_dtype is not None and cfg.train.dtype == "float64":
            raise ValueError(f"train.dtype=float64 runs without mixed precision: set train.amp=off (now {cfg.train.amp})")
        scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
        self._setup_ema(cfg.train.ema_decay)
        autocast = (lambda: torch.autocast(self.device.type, dtype=amp_dtype)) if amp_dtype is not None else \
            contextlib.nullcontext
        return StageRun(stage_idx, cfg, task, splits, frozen, train_loader, eval_loader, val_loader, spe, optimizer,
                        sched, scaler, autocast, self._training_model(cfg))

    def _amp(self, cfg: StageConfig, stage_idx: int, splits: DataSplits) -> str:
        """This stage's precision (``off``/``bf16``/``fp16``): fixed by ``train.amp``, else measured once on this
        model (:mod:`.amp`; rank 0 decides for all) and kept in the checkpoint so that a resumed run keeps it."""
        key = str(stage_idx)
        if key not in self.state.amp:
            mode = "off" if cfg.train.dtype == "float64" and cfg.train.amp == "auto" else cfg.train.amp
            choice = fixed_amp(mode, self.device)
            if choice is None:
                shape = tuple(getattr(splits, "input_size", ()) or ())
                gain = 0.0
                if len(shape) == 3 and self.dist.is_main:
                    batch = max(1, cfg.data.batch_size // self.dist.world_size)
                    x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0))
                    if self._channels_last(cfg):
                        x = x.contiguous(memory_format=torch.channels_last)
                    gain = bf16_step_gain(unwrap_model(self.model), x)
                choice = "bf16" if gain >= CPU_BF16_MIN_GAIN else "off"
                if self.dist.enabled:
                    choice = str(broadcast_object(choice))
                measured = f"a bf16 training step is {gain:.2f}x the speed of fp32 here" if gain else \
                    "no fixed input size to measure a step on"
                self.log(f"[{cfg.stage.name}] train.amp=auto on a CPU with native bf16: {measured}, so this stage "
                         f"trains in {'bf16' if choice == 'bf16' else 'fp32'} (bf16 needs {CPU_BF16_MIN_GAIN:g}x)")
            self.state.amp[key] = choice
        return self.state.amp[key]

    def _setup_ema(self, decay: float) -> None:
        if decay <= 0:
            return
        if self.ema is None:
            self.ema = ModelEma(unwrap_model(self.model), decay)
            if self._ema_state is not None:
                self.ema.load_state_dict(self._ema_state)
        self.ema.decay = decay

    def _training_model(self, cfg: StageConfig) -> nn.Module:
        train_model: nn.Module = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            train_model = nn.parallel.DistributedDataParallel(unwrap_model(self.model), device_ids=ids,
                                                              find_unused_parameters=cfg.train.find_unused_parameters)
        if cfg.train.compile:
            train_model = torch.compile(train_model)
        return train_model

    def _resume_or_seed(self, run: StageRun) -> None:
        """Restore optimizer/schedule/RNG when resuming inside this stage, else seed the stage afresh."""
        s = self.state
        if self.resume_ckpt is not None and s.opt_stage == run.index and s.stage == run.index:
            ck = self.resume_ckpt
            run.optimizer.load_state_dict(ck["optimizer"])
            run.sched.load_state_dict(ck["schedule"])
            if run.scaler is not None and ck.get("scaler"):
                run.scaler.load_state_dict(ck["scaler"])
            rng = ck["rng"]
            restore_rng(rng[self.dist.rank] if self.dist.rank < len(rng) else rng[0])
        else:
            _seed_all(derive_seed(self.seed, "stage", run.index, "rank", self.dist.rank))
            s.epoch, s.step, s.sums = 0, 0, {}
        self.resume_ckpt = None
        s.stage, s.opt_stage = run.index, run.index

    def _run_stage(self, stage_idx: int) -> dict[str, float]:
        run = self._setup_stage(stage_idx)
        self.eval_samples = len(run.splits.eval)
        self._resume_or_seed(run)
        self.log(f"[{run.name}] task={run.task.name} model={run.cfg.model.name} data={run.splits.name} "
                 f"train={run.train_loader.num_samples} eval={run.eval_loader.num_samples} "
                 f"steps/epoch={run.steps_per_epoch} epochs={run.epochs} device={self.device} "
                 f"world={self.dist.world_size}")
        final: dict[str, float] = dict(self.state.last_metrics)
        while self.state.epoch < run.epochs:
            self._train_epoch(run)
            final = self._end_epoch(run) or final
        return final

    def _evaluate(self, run: StageRun) -> dict[str, float]:
        eval_model = self._eval_model()
        metrics = {f"eval_{k}": v for k, v in run.task.evaluate(
            eval_model, run.eval_loader, distributed=self.dist.enabled, autocast=run.autocast).items()}
        if run.val_loader is not None:
            metrics.update({f"val_{k}": v for k, v in run.task.evaluate(
                eval_model, run.val_loader, distributed=self.dist.enabled, autocast=run.autocast).items()})
        return metrics

    def _end_epoch(self, run: StageRun) -> dict[str, float]:
        """Evaluate (when due), step the plateau schedule, log the row and checkpoint; returns the metrics."""
        s, task, epochs = self.state, run.task, run.epochs
        epoch = s.epoch
        row = {k: v for k, v in s.sums.items() if not k.startswith("_")}
        due = (epoch + 1) % run.cfg.train.eval_every == 0 or epoch + 1 == epochs
        metrics = self._evaluate(run) if due else {}
        bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
        if bad:  # a checkpoint that evaluates to inf/NaN is not a good one: keep the previous file
            raise NonFiniteLossError(
                f"the evaluation after stage {run.name!r} epoch {epoch + 1} is non-finite ({bad}); training stopped, "
                f"nothing was written for this epoch. Lower optim.lr (now {run.cfg.optim.lr:g}) or set "
                f"train.grad_clip")
        # the plateau schedule and the best checkpoint read the held-out validation split only: the evaluation
        # split is the test set (recipes with a plateau schedule must set data.val_fraction; no best without one)
        reduced = run.sched.epoch_end(metrics.get("val_loss"))
        main = metrics.get(f"val_{task.main_metric}")
        is_best = main is not None and task.is_better(main, s.best)
        if is_best:
            s.best = main
            s.best_where = {"stage": run.index, "epoch": epoch + 1, "metric": f"val_{task.main_metric}"}
        row = {"stage": run.index, "stage_name": run.name, "epoch": epoch + 1,
               "global_step": s.global_step, "lr": run.sched.last_lr, **row, **metrics}
        if reduced:
            row["lr_reduced"] = True
        s.history.append(row)
        if metrics:
            s.last_metrics = metrics
        s.epoch, s.step, s.sums = epoch + 1, 0, {}
        if s.epoch == epochs:
            s.stage, s.epoch = run.index + 1, 0
        every = run.cfg.checkpoint.every
        keep = f"epoch_{len(s.history):04d}.pt" if every and (epoch + 1) % every == 0 else None
        self._checkpoint(run, is_best=is_best and run.cfg.checkpoint.save_best, keep_copy=keep)
        if s.stage != run.index:
            s.epoch = epochs
        self._write_metrics()
        self.tb.log(row, s.global_step)
        self._print_epoch(row, task, epochs)
        return metrics

    def _print_epoch(self, row: dict[str, Any], task: Task, epochs: int) -> None:
        parts = [f"[{row['stage_name']}] epoch {row['epoch']}/{epochs}", f"lr {row['lr']:.3g}"]
        for k in ("train_loss", f"train_{task.main_metric}", "eval_loss", f"eval_{task.main_metric}",
                  f"val_{task.main_metric}", "img_per_s", "epoch_time_s"):
            if k in row and isinstance(row[k], float):
                parts.append(f"{k} {row[k]:.4g}")
        self.log("  ".join(parts))

    def _finite_everywhere(self, loss: torch.Tensor, grad_norm: torch.Tensor | None) -> bool:
        """Whether the loss (and gradient norm) are finite on every rank (a collective under DDP)."""
        ok = torch.isfinite(loss.detach().float())
        if grad_norm is not None:
            ok = ok & torch.isfinite(grad_norm)
        if is_distributed():
            flag = ok.to(torch.int32).reshape(1)
            if torch.distributed.get_backend() == "nccl" and flag.device.type != "cuda":
                flag = flag.cuda()
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
            ok = flag[0] > 0
        return bool(ok)

    def _defers_finite_check(self, run: StageRun) -> bool:
        """Whether steps are checked for non-finite values in batches (:data:`FINITE_CHECK_EVERY`), not one by one."""
        return (self.device.type == "cuda" and run.cfg.train.on_nonfinite == "stop" and run.scaler is None
                and not is_distributed())

    def _read_finite(self, run: StageRun, step: int) -> None:
        """Read the combined finite flag of the steps since the last read; stop the run if one was not finite."""
        pending, self._pending_finite = self._pending_finite, None
        if pending is not None and not bool(pending):
            raise NonFiniteLossError(
                f"non-finite training loss or gradient at stage {run.name!r} epoch {self.state.epoch + 1} within the "
                f"{FINITE_CHECK_EVERY} steps up to step {step + 1} (checked every {FINITE_CHECK_EVERY} steps on "
                f"{self.device.type}); training stopped, the last good (finite) checkpoint is kept. Lower optim.lr "
                f"(now {run.cfg.optim.lr:g}), set train.grad_clip, or skip such steps with train.on_nonfinite=skip")

    def _non_finite(self, run: StageRun, step: int) -> NonFiniteLossError:
        where = self.out_dir / "last.pt" if self.out_dir is not None else None
        keep = (f"the last good (finite) checkpoint is kept at {where}" if where is not None and where.exists()
                else "no checkpoint was written yet")
        return NonFiniteLossError(
            f"non-finite training loss or gradient at stage {run.name!r} epoch {self.state.epoch + 1} step {step + 1} "
            f"(global step {self.state.global_step + 1}); training stopped before the update, {keep}. Lower "
            f"optim.lr (now {run.cfg.optim.lr:g}), set train.grad_clip, or skip such steps with "
            f"train.on_nonfinite=skip")

    def _begin_epoch(self, run: StageRun) -> _EpochSums:
        """Put the model in training mode, position the loader (mid-epoch on resume) and restore the sums."""
        s, dev = self.state, self.device
        run.train_model.train()
        for m in run.frozen:
            m.eval()
        if self.ema is not None:
            self.ema.module.eval()
        run.train_loader.set_epoch(s.epoch)
        if s.step:
            run.train_loader.skip(s.step)
        n_seen = float(s.sums.get("_n", 0.0))
        return _EpochSums(
            sums={k: torch.tensor(v, dtype=torch.float64, device=dev) for k, v in s.sums.items()
                  if not k.startswith("_")},
            n_seen=n_seen, n_start=n_seen, elapsed_before=float(s.sums.get("_time", 0.0)),
            skipped=int(s.sums.get("_skipped", 0)))

    def _optimizer_step(self, run: StageRun, batch: Any, step: int
                        ) -> tuple[torch.Tensor, dict[str, torch.Tensor], bool]:
        """Forward under autocast, backward, optional clipping, optimizer and EMA update.

        Every step checks the loss and the gradient norm before the update: a non-finite one stops the
        run (``train.on_nonfinite: stop``, nothing is updated or written) or skips the update (``skip``).
        Returns (loss, logs, whether the update was applied). With fp16 ``GradScaler`` the scaler skips
        overflowing steps itself, so only the loss is checked there.
        """
        with run.autocast():
            loss, logs = run.task.training_step(run.train_model, batch)
        run.optimizer.zero_grad(set_to_none=True)
        clip = run.cfg.train.grad_clip
        params = unwrap_model(self.model).parameters()
        if run.scaler is not None:
            run.scaler.scale(loss).backward()
            if clip:
                run.scaler.unscale_(run.optimizer)
                nn.utils.clip_grad_norm_(params, clip)
            grad_norm = None
        else:
            loss.backward()
            grad_norm = nn.utils.clip_grad_norm_(params, clip) if clip else _grad_norm(params)
        if self._defers_finite_check(run):
            ok = torch.isfinite(loss.detach().float())
            ok = ok & torch.isfinite(grad_norm) if grad_norm is not None else ok
            self._pending_finite = ok if self._pending_finite is None else self._pending_finite & ok
            if (step + 1) % FINITE_CHECK_EVERY == 0:
                self._read_finite(run, step)
        elif not self._finite_everywhere(loss, grad_norm):
            if run.cfg.train.on_nonfinite == "stop":
                raise self._non_finite(run, step)
            run.optimizer.zero_grad(set_to_none=True)
            return loss, logs, False
        if run.scaler is not None:
            run.scaler.step(run.optimizer)
            run.scaler.update()
        else:
            run.optimizer.step()
        if self.ema is not None:
            self.ema.update(unwrap_model(self.model))
        return loss, logs, True

    def _accumulate(self, acc: _EpochSums, run: StageRun, batch: Any, loss: torch.Tensor,
                    logs: dict[str, torch.Tensor]) -> None:
        n = run.task.batch_size(batch)
        acc.n_seen += n * self.dist.world_size
        det = loss.detach()
        for k, v in {"train_loss": det, **{f"train_{k}": v for k, v in logs.items()}}.items():
            v = torch.as_tensor(v, device=self.device).detach().double() * n
            acc.sums[k] = acc.sums[k] + v if k in acc.sums else v

    def _progress_bar(self, run: StageRun) -> Any:
        show = self.dist.is_main and _progress_enabled(
            self.progress_override if self.progress_override is not None else run.cfg.train.progress)
        if not show:
            return None
        return tqdm(total=run.steps_per_epoch, initial=self.state.step,
                    desc=f"{run.name} {self.state.epoch + 1}/{run.epochs}", leave=False, dynamic_ncols=True,
                    file=sys.stderr)

    def _show_progress(self, bar: Any, acc: _EpochSums, run: StageRun) -> None:
        s, spe = self.state, run.steps_per_epoch
        if s.step % run.cfg.train.log_interval == 0 or s.step == spe:
            post = {k.replace("train_", ""): f"{float(v) * self.dist.world_size / acc.n_seen:.4g}"
                    for k, v in acc.sums.items()}
            post["img/s"] = f"{(acc.n_seen - acc.n_start) / max(time.perf_counter() - acc.t0, 1e-9):.0f}"
            bar.set_postfix(post, refresh=False)
        bar.update(1)

    def _train_epoch(self, run: StageRun) -> None:
        s, spe = self.state, run.steps_per_epoch
        acc = self._begin_epoch(run)
        every_steps = run.cfg.checkpoint.every_steps
        bar = self._progress_bar(run)
        for step, batch in enumerate(run.train_loader, start=s.step):
            run.sched.step(s.epoch * spe + step)
            loss, logs, applied = self._optimizer_step(run, batch, step)
            if applied:
                self._accumulate(acc, run, batch, loss, logs)
            else:
                acc.skipped += 1
                self.log(f"[{run.name}] epoch {s.epoch + 1} step {step + 1}: non-finite loss or gradient, "
                         f"update skipped (train.on_nonfinite=skip)")
            s.global_step += 1
            s.step = step + 1
            if bar is not None:
                self._show_progress(bar, acc, run)
            if every_steps and s.step % every_steps == 0 and s.step < spe:
                self._read_finite(run, step)
                s.sums = {k: float(v) for k, v in acc.sums.items()}
                s.sums.update({"_n": acc.n_seen, "_time": acc.elapsed_before + time.perf_counter() - acc.t0,
                               "_skipped": acc.skipped})
                self._checkpoint(run)
        if bar is not None:
            bar.close()
        self._read_finite(run, s.step - 1)
        s.sums = self._epoch_means(acc)

    def _epoch_means(self, acc: _EpochSums) -> dict[str, float]:
        """Per-sample means of the epoch over all ranks, with time and throughput."""
        elapsed = acc.elapsed_before + time.perf_counter() - acc.t0
        sums = acc.sums
        if is_distributed() and sums:
            keys = sorted(sums)
            packed = torch.stack([sums[k] for k in keys])
            torch.distributed.all_reduce(packed)  # per-rank sums of (batch mean × local batch) → global sums
            sums = dict(zip(keys, packed.unbind(0)))
        else:
            sums = {k: v * self.dist.world_size for k, v in sums.items()}
        out = {k: float(v) / max(acc.n_seen, 1) for k, v in sums.items()}
        out["epoch_time_s"] = elapsed
        out["img_per_s"] = acc.n_seen / max(elapsed, 1e-9)
        if acc.skipped:
            out["skipped_steps"] = acc.skipped
        return out

    def _result(self, final: dict[str, float], seconds: float) -> dict[str, Any]:
        task_cls = create_task(self.stages[-1])
        s = self.state
        model = unwrap_model(self.model)
        return {
            "name": self.recipe.name, "out_dir": str(self.out_dir) if self.out_dir else None,
            "model": self.recipe.model.name, "task": task_cls.name, "main_metric": task_cls.main_metric,
            "higher_is_better": task_cls.higher_is_better, "final": final,
            "best": {"value": s.best, **s.best_where},
            "params": sum(p.numel() for p in model.parameters()),
            "epochs": len(s.history), "global_step": s.global_step, "train_time_s": seconds,
            "world_size": self.dist.world_size, "device": str(self.device), "data": self.data_info,
            "eval_samples": self.eval_samples, "amp": _amp_text(s.amp, self.stages), "allocator": allocator_state(),
            "checkpoint": str(self.out_dir / "last.pt") if self.out_dir else None,
            "best_checkpoint": str(self.out_dir / "best.pt") if self.out_dir and (self.out_dir / "best.pt").exists()
            else None,
            "history": s.history,
        }


def _amp_text(amp: dict[str, str], stages: list[StageConfig]) -> str:
    """The precision the run trained in: one word, or ``stage=word`` per stage when they differ."""
    if len(set(amp.values())) <= 1:
        return next(iter(amp.values()), "off")
    return ", ".join(f"{stages[int(k)].stage.name}={v}" for k, v in sorted(amp.items(), key=lambda kv: int(kv[0])))


#: the files that make a folder a run folder (a fresh run refuses one that holds any)
RUN_FILES = ("last.pt", "result.json", "recipe.yaml", "metrics.jsonl")
#: what a resumed run may change: where and how it runs, never what it trains
RESUME_KEYS = ("train.device", "train.threads", "train.allocator", "train.progress", "data.root",
               "data.num_workers", "checkpoint.every", "checkpoint.every_steps")


def _check_fresh(run_dir: Path, overwrite: bool) -> None:
    """Refuse a folder that already holds a run (or clear it with ``overwrite``): two runs never mix."""
    held = [f for f in RUN_FILES if (run_dir / f).exists()]
    if not held:
        return
    if not overwrite:
        raise ValueError(f"run folder {run_dir} already holds a run ({', '.join(held)}): continue it with "
                         f"--resume {run_dir}, write elsewhere with another --out, or replace it with --overwrite")
    for path in run_dir.iterdir():
        if path.is_file() and (path.name in RUN_FILES or path.suffix == ".pt" or path.name.startswith("metrics.")):
            path.unlink()


def _check_resume(saved: Mapping[str, Any], resolved: Recipe, where: Path) -> None:
    """A resumed run continues the recipe it was started with: only :data:`RESUME_KEYS` may change."""
    changed = sorted(k for k in recipe_diff(saved, resolved.to_dict())
                     if k not in ("name", "description") and not k.startswith(RESUME_KEYS))
    if changed:
        raise ValueError(f"--resume {where}: the overrides change what the run trains ({', '.join(changed)}); a "
                         f"resumed run continues its own recipe (only {', '.join(RESUME_KEYS)} may change) — start "
                         "a new run with another --out instead")


def _default_out_dir(name: str) -> Path:
    return Path("runs") / f"{name or 'run'}-{time.strftime('%Y%m%d-%H%M%S')}"


def train(recipe: str | os.PathLike | Mapping[str, Any] | None = None,
          overrides: Mapping[str, Any] | list[str] | None = None, out_dir: str | os.PathLike | None = None,
          resume: str | os.PathLike | None = None, verbose: bool = True, progress: bool | None = None,
          save: bool = True, overwrite: bool = False) -> dict[str, Any]:
    """Train a recipe; returns the result dict (also written to ``out_dir/result.json``).

    Args:
        recipe: YAML path, bundled recipe name, or a dict. Optional when resuming.
        overrides: ``{"optim.lr": 0.01}`` or ``["optim.lr=0.01"]``.
        out_dir: run folder (default ``runs/<name>-<time>``); under DDP rank 0 writes it.
        resume: a run folder or checkpoint to continue; its saved recipe is used (``overrides`` apply on top).
        verbose: print one line per epoch (rank 0).
        progress: force the progress bar on/off (default: ``train.progress``, else when stderr is a TTY).
        save: write checkpoints and metrics (``False`` keeps everything in memory).
        overwrite: a fresh run may replace the run already in ``out_dir`` (else that is refused). A run folder
            is locked while a run writes it: a second process gets one clear error, never a mixed folder.

    Returns:
        ``{"final": {eval_loss, eval_acc1, ...}, "best": {...}, "params", "history", "checkpoint", ...}``.

    Raises:
        NonFiniteLossError: the loss or gradient became NaN/inf and ``train.on_nonfinite`` is ``stop``
            (message names stage/epoch/step and what to lower; the last checkpoint is the last finite one).
    """
    ckpt = None
    if resume is not None:
        ckpt = load_checkpoint(resume)
        resolved = validate_recipe(apply_overrides(ckpt["recipe"], overrides))
        _check_resume(ckpt["recipe"], resolved, Path(resume))
        run_dir = Path(out_dir) if out_dir is not None else Path(ckpt["path"]).parent
        if ckpt.get("world_size", 1) != int(os.environ.get("WORLD_SIZE", "1")):
            _LOG.info(f"note: resuming a run saved with {ckpt.get('world_size')} process(es) on "
                      f"{os.environ.get('WORLD_SIZE', '1')}", extra=STDERR)
    else:
        if recipe is None:
            raise ValueError("train: give a recipe (file, bundled name or dict) or resume=RUN_DIR")
        resolved = load_recipe(recipe, overrides)
        run_dir = Path(out_dir) if out_dir is not None else _default_out_dir(resolved.name)
    writes = save and int(os.environ.get("RANK", "0")) == 0  # under DDP rank 0 writes the folder
    with folder_lock(run_dir) if writes else contextlib.nullcontext():
        if ckpt is None and writes:
            _check_fresh(run_dir, overwrite)
        trainer = Trainer(resolved, run_dir if save else None, resume_ckpt=ckpt, verbose=verbose, progress=progress)
        return trainer.run()


@torch.no_grad()
def evaluate_checkpoint(path: str | os.PathLike, overrides: Mapping[str, Any] | None = None, device: str = "auto",
                        use_ema: bool = True, split: str = "eval", verbose_report: bool = True) -> dict[str, Any]:
    """Evaluate a checkpoint on its recipe's data, or on other data via ``overrides``.

    Args:
        path: checkpoint file or run folder.
        overrides: ``data.*`` / ``task.*`` recipe keys, e.g. ``{"data.root": "...", "task.sigma": 50}``
            (a bare key means ``data.<key>``).
        split: ``eval`` (default), ``train`` or ``val``.
        verbose_report: also return the task's text report (:meth:`Task.report`, e.g. per-image PSNR).

    Returns:
        ``{"metrics": {...}, "main_metric", "higher_is_better", "num_samples", "split", "checkpoint",
        "data", "model", "report"}``.
    """
    model, ckpt = load_model(path, use_ema=use_ema)
    recipe = ckpt["recipe"]
    if overrides:
        fixed = {k if "." in k else f"data.{k}": v for k, v in overrides.items()}
        if "data.name" in fixed and fixed["data.name"] != recipe["data"]["name"]:
            # Options of the old dataset do not apply to the new one.
            base = {k: v for k, v in recipe["data"].items() if k in ("batch_size", "eval_batch_size", "num_workers",
                                                                     "normalize")}
            recipe = {**recipe, "data": base, "stages": [
                {k: v for k, v in st.items() if k != "data"} for st in recipe.get("stages", [])]}
        recipe = validate_recipe(apply_overrides(recipe, fixed))
    cfg = stage_configs(recipe)[-1]
    dev = resolve_device(device)
    model.to(dev)
    task = create_task(cfg)
    splits = task.build_data()
    info = ckpt["data_info"]
    if info.get("num_classes") and getattr(splits, "num_classes", None) not in (None, 0, info["num_classes"]):
        raise ValueError(f"checkpoint {ckpt['path']} predicts {info['num_classes']} classes but dataset "
                         f"{splits.name!r} has {splits.num_classes}")
    chosen = {"eval": splits.eval, "train": splits.train, "val": getattr(splits, "val", None)}.get(split)
    if chosen is None:
        raise ValueError(f"split must be one of eval, train, val (val needs data.val_fraction), got {split!r}")
    # Normalise with the statistics the model was trained with.
    mean = info.get("mean") or getattr(splits, "mean", None)
    std = info.get("std") or getattr(splits, "std", None)
    loader = make_loader(chosen, cfg.data, train=False, device=dev, seed=cfg.seed, mean=mean, std=std)
    metrics = task.evaluate(model, loader)
    report = task.report(model, loader) if verbose_report else None
    return {"metrics": metrics, "main_metric": task.main_metric, "higher_is_better": task.higher_is_better,
            "num_samples": loader.num_samples, "split": split, "checkpoint": ckpt["path"],
            "data": cfg.data.name, "model": cfg.model.name, "report": report}
