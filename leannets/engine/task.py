"""The Task interface: what one training run optimises = model + loss + metrics + data.

There is ONE trainer (:mod:`leannets.engine.trainer`); what differs between classification,
restoration and auto-encoder training lives in a :class:`Task` subclass.

How another slice plugs in (e.g. ``leannets/engine/tasks/restoration.py``; every module in
``leannets/engine/tasks/`` is imported automatically, so just create the file)::

    from leannets.config import Field
    from leannets.engine.task import Task, register_task

    @register_task("denoising")
    class DenoisingTask(Task):
        options = {"sigma": Field(float, 25.0, "noise σ on [0, 255]")}   # -> recipe key task.sigma
        main_metric, higher_is_better = "psnr", True

        def build_data(self) -> DataSplits: ...                 # default: leannets.data.build_dataset
        def build_model(self, splits) -> nn.Module: ...         # default: create_model(model.name, ...)
        def training_step(self, model, batch): return loss, {"psnr": ...}
        def eval_step(self, model, batch): return {"loss": (sum, n), "psnr": (sum, n)}

The trainer calls, per stage (the task is re-created for each stage with that stage's resolved
config, so per-stage options such as a WAE ``task.mode`` just work):
``build_data`` → (first stage only) ``build_model`` → for each step ``training_step`` under autocast,
then backward/clip/step → ``evaluate`` (default: sums ``eval_step`` results over the loader,
all-reduced across DDP ranks) → ``main_metric`` picks ``best.pt``.

A batch is whatever the loader yields (a tuple/list of tensors for the bundled loaders), already on
the device; :meth:`Task.batch_size` tells the trainer how many samples it holds (for img/s).
"""
from __future__ import annotations

import importlib
import logging
from typing import Any, Callable, ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from leannets._log import STDERR
from leannets.config import DataSection, Field, StageConfig
from leannets.data import DataSplits, build_dataset, data_section, dataset_info
from leannets.models import create_model, model_info
from leannets.models.convert import CONVERT_OPTIONS, convert_model
from leannets.models.wae_classifier import wrap_wae
from leannets.registry import Registry

_LOG = logging.getLogger(__name__)

__all__ = ["Task", "register_task", "get_task_class", "create_task", "list_tasks", "MetricSums"]

TASKS: Registry[type["Task"]] = Registry(
    "task", recipe_key="task.name", loader=lambda: importlib.import_module("leannets.engine.tasks"))


class MetricSums:
    """Accumulates ``{name: (sum, count)}`` pairs on the device; one sync at :meth:`compute`."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, torch.Tensor] = {}

    def update(self, values: dict[str, tuple[torch.Tensor | float, int | torch.Tensor]]) -> None:
        for key, (s, n) in values.items():
            s = torch.as_tensor(s, dtype=torch.float64).detach()
            n = torch.as_tensor(n, dtype=torch.float64, device=s.device)
            if key in self.sums:
                self.sums[key] = self.sums[key] + s.to(self.sums[key].device)
                self.counts[key] = self.counts[key] + n.to(self.counts[key].device)
            else:
                self.sums[key], self.counts[key] = s.clone(), n.clone()

    def compute(self, distributed: bool = False) -> dict[str, float]:
        """Means per key (sums and counts all-reduced first when ``distributed``)."""
        keys = sorted(self.sums)
        if not keys:
            return {}
        device = self.sums[keys[0]].device
        packed = torch.stack([torch.stack([self.sums[k].to(device), self.counts[k].to(device)]) for k in keys])
        if distributed and torch.distributed.is_available() and torch.distributed.is_initialized():
            if torch.distributed.get_backend() == "nccl" and packed.device.type != "cuda":
                packed = packed.cuda()
            torch.distributed.all_reduce(packed)
        packed = packed.cpu()
        return {k: float(packed[i, 0] / packed[i, 1]) if packed[i, 1] > 0 else float("nan")
                for i, k in enumerate(keys)}


class Task:
    """Base task. Subclasses set ``options``, ``main_metric``, ``higher_is_better`` and the steps.

    Attributes:
        cfg: the resolved (stage) config: sections ``task``, ``model``, ``data``, ``optim``, ...
        opts: ``cfg["task"]`` (name + this task's options).
    """

    name: ClassVar[str] = ""
    options: ClassVar[dict[str, Field]] = {}
    main_metric: ClassVar[str] = "loss"
    higher_is_better: ClassVar[bool] = False

    def __init__(self, cfg: StageConfig) -> None:
        self.cfg = cfg
        self.opts = cfg.task

    # -- data and model -------------------------------------------------------------------------
    def build_data(self) -> DataSplits:
        """Train/eval splits of the recipe's dataset (``data`` section, see :meth:`data_config`)."""
        return build_dataset(self.data_config(), seed=self.cfg.seed)

    def data_config(self) -> DataSection:
        """The ``data`` section; a dataset that resizes to any size (``imagefolder``) without ``data.input_size``
        gets the model's native input size (a CIFAR net at ImageNet's 224² costs ~50× the compute)."""
        data = self.cfg.data
        if data.input_size is not None or not dataset_info(data.name).any_size:
            return data
        try:
            size = int(model_info(self.cfg.model.name).input_size[-1])
        except ValueError:  # not a registered model name: the dataset's own default applies
            return data
        _LOG.info(f"data.input_size not set: using {self.cfg.model.name}'s native input size {size}×{size} "
                  "(set data.input_size to change it)", extra=STDERR)
        return data_section({**data.to_dict(), "input_size": size})

    def build_model(self, splits: DataSplits) -> nn.Module:
        """The recipe's model sized for the data (classes, channels)."""
        m = self.cfg.model
        kwargs = dict(m.kwargs or {})
        if getattr(splits, "num_classes", None):
            kwargs.setdefault("num_classes", splits.num_classes)
        if getattr(splits, "in_chans", None):
            kwargs.setdefault("in_chans", splits.in_chans)
        model = create_model(m.name, **kwargs)
        if m.convert:
            try:
                report = convert_model(model, input_size=tuple(getattr(splits, "input_size", ()) or ()) or None,
                                       **m.convert)
            except TypeError as err:
                raise ValueError(f"model.convert: {err} (allowed: {', '.join(CONVERT_OPTIONS)})") from err
            if report.note:
                raise ValueError(f"model.convert on {m.name}: {report.note}")
            _LOG.info(f"model.convert: {len(report.replaced)} layer(s) replaced {report.counts()}, params "
                      f"{report.params[0]:,} -> {report.params[1]:,}")
        if m.wrap_wae is not None:
            try:
                model = wrap_wae(model, **m.wrap_wae)
            except TypeError as err:
                raise ValueError(f"model.wrap_wae: {err}") from err
        return model

    # -- steps ------------------------------------------------------------------------------------
    def batch_size(self, batch: Any) -> int:
        """Samples in ``batch`` (first tensor's leading dimension)."""
        first = batch[0] if isinstance(batch, (list, tuple)) else batch
        return int(first.shape[0])

    def training_step(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return (scalar loss to backpropagate, detached per-batch means to log)."""
        raise NotImplementedError

    def eval_step(self, model: nn.Module, batch: Any) -> dict[str, tuple[torch.Tensor, int]]:
        """Return ``{metric: (sum over the batch, count)}``; must include ``loss``."""
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader: Any, distributed: bool = False,
                 autocast: Callable[[], Any] | None = None) -> dict[str, float]:
        """Mean of every ``eval_step`` metric over ``loader`` (all-reduced under DDP)."""
        was_training = model.training
        model.eval()
        sums = MetricSums()
        try:
            for batch in loader:
                if autocast is None:
                    sums.update(self.eval_step(model, batch))
                else:
                    with autocast():
                        sums.update(self.eval_step(model, batch))
        finally:
            model.train(was_training)
        return sums.compute(distributed)

    def report(self, model: nn.Module, loader: Any) -> str | None:
        """Optional detailed text for ``leannets eval`` (e.g. per-image PSNR); ``None`` by default."""
        return None

    @classmethod
    def evaluate_folder(cls, checkpoint: str, folder: str, options: dict[str, Any], device: str = "cpu"
                        ) -> dict[str, Any] | None:
        """``leannets eval CHECKPOINT --data DIR`` on a plain folder of files (e.g. a restoration test set).

        Return ``{"metrics": {...}, "report": str | None, "num_samples": int}`` or ``None`` (the default)
        to let the folder become ``data.root`` of the checkpoint's dataset. ``options`` holds the task
        options given on the command line (``--sigma``, ``--scale``, ``--set task.k=v``).
        """
        return None

    def is_better(self, new: float, old: float | None) -> bool:
        """Whether metric value ``new`` beats ``old`` (``None`` = no previous value)."""
        if old is None or old != old:
            return new == new
        return new > old if self.higher_is_better else new < old


def register_task(name: str) -> Callable[[type[Task]], type[Task]]:
    """Class decorator registering a :class:`Task` subclass under ``name`` (recipe ``task.name``)."""

    def wrap(cls: type[Task]) -> type[Task]:
        if "name" in cls.options:
            raise ValueError(f"task {name!r}: option 'name' is reserved")
        TASKS.register(name, cls)
        cls.name = name
        return cls

    return wrap


def list_tasks() -> list[str]:
    return TASKS.names()


def get_task_class(name: str) -> type[Task]:
    """The registered class for ``name``; ``ValueError`` listing the known tasks otherwise."""
    return TASKS.get(name)


def create_task(cfg: StageConfig) -> Task:
    """Instantiate the task named by ``cfg.task.name`` with the resolved (stage) config."""
    return get_task_class(cfg.task.name)(cfg)


def cross_entropy_sums(logits: torch.Tensor, target: torch.Tensor, topk: tuple[int, ...] = (1, 5)
                       ) -> dict[str, tuple[torch.Tensor, int]]:
    """Summed CE loss and top-k correct counts of one batch (helper for classification-like tasks).

    Top-k for k > 1 is reported only when there are more than k classes (top-5 of 3 classes is always 100 %).
    """
    n = target.shape[0]
    out = {"loss": (F.cross_entropy(logits.float(), target, reduction="sum"), n)}
    ks = [k for k in topk if k == 1 or k < logits.shape[1]]
    pred = logits.topk(max(ks), dim=1).indices
    correct = pred.eq(target[:, None])
    for k in ks:
        out[f"acc{k}"] = (correct[:, :k].any(dim=1).sum().float(), n)
    return out
