"""Deployment: export a model to ONNX or TorchScript and check the file against PyTorch.

Both formats are produced by tracing one eval-mode forward at a fixed spatial size; the
batch dimension stays dynamic (ONNX ``dynamic_axes``; traced TorchScript keeps shapes
symbolic). Models whose forward returns a tuple/list/dict are wrapped so the exported
graph returns a flat tuple of tensors in a fixed order (dict keys sorted).

``torch.jit.trace`` and the TorchScript-based ONNX exporter are deprecated upstream in
favour of ``torch.export``, but they remain the only paths that produce a ``.pt``
TorchScript archive and an ONNX file without the optional ``onnxscript`` package, so the
deprecation warnings are silenced here on purpose.
"""
from __future__ import annotations

import copy
import json
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from leannets._io import atomic_write
from leannets.engine.checkpoint import load_model
from leannets.models import create_model, is_model, model_info

from .fold_bn import fold_bn as _fold
from .fold_bn import probe_inputs

#: Inputs up to this size (CIFAR-style models) take the whole image resized; larger ones a centre crop.
SMALL_INPUT = 64

__all__ = ["FORMATS", "DEFAULT_OPSET", "SMALL_INPUT", "ExportResult", "default_export_path", "export_model",
           "flatten_outputs", "load_exported", "load_model_source", "LoadedModel", "run_exported",
           "smallest_input_size", "verify_export"]

FORMATS = ("onnx", "torchscript", "safetensors")
DEFAULT_OPSET = 17
_SUFFIX = {"onnx": ".onnx", "torchscript": ".pt", "safetensors": ".safetensors"}


@dataclass
class ExportResult:
    """What was written and how closely it matches PyTorch."""

    path: str
    format: str
    input_size: tuple[int, int, int]
    folded_bn_pairs: int | None
    outputs: int
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    verified_batch: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def flatten_outputs(out: Any) -> list[torch.Tensor]:
    """Tensors of a model output in a fixed order (tuples/lists in order, dicts by sorted key)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for k in sorted(out) for t in flatten_outputs(out[k])]
    if isinstance(out, (list, tuple)):
        return [t for item in out for t in flatten_outputs(item)]
    raise ValueError(f"cannot export a model output of type {type(out).__name__}; expected tensors, "
                     "tuples/lists or dicts of tensors")


class _FlatOutputs(nn.Module):
    """Returns the wrapped model's outputs as one tensor or a flat tuple (traceable)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> Any:
        outs = flatten_outputs(self.model(x))
        return outs[0] if len(outs) == 1 else tuple(outs)


def smallest_input_size(model: nn.Module, in_chans: int | None = None, floor: int = 8) -> tuple[int, int, int]:
    """The smallest (C, H, W) the model accepts: its ``min_input_size`` (at least ``floor``)
    rounded up to its ``size_divisor``."""
    channels = int(in_chans or getattr(model, "in_chans", 3))
    size = max(int(getattr(model, "min_input_size", 1)), floor)
    div = max(int(getattr(model, "size_divisor", 1)), 1)
    size = -(-size // div) * div
    return channels, size, size


def _check_format(fmt: str) -> str:
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; allowed: {', '.join(FORMATS)}")
    return fmt


def _check_input_size(input_size: Sequence[int]) -> tuple[int, int, int]:
    size = tuple(int(v) for v in input_size)
    if len(size) != 3 or min(size) <= 0:
        raise ValueError(f"input size must be three positive integers C H W, got {tuple(input_size)}")
    return size  # type: ignore[return-value]


def _pool_matrix(size_in: int, size_out: int) -> torch.Tensor:
    """(size_out, size_in) averaging matrix of adaptive average pooling along one axis."""
    mat = torch.zeros(size_out, size_in)
    for i in range(size_out):
        start, end = (i * size_in) // size_out, -(-((i + 1) * size_in) // size_out)
        mat[i, start:end] = 1.0 / (end - start)
    return mat


class _MatrixAdaptiveAvgPool2d(nn.Module):
    """Adaptive average pooling at one fixed input size as two matrix products (ONNX-exportable
    when the output size does not divide the input size)."""

    def __init__(self, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> None:
        super().__init__()
        self.register_buffer("ph", _pool_matrix(in_hw[0], out_hw[0]))
        self.register_buffer("pwt", _pool_matrix(in_hw[1], out_hw[1]).t().contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(torch.matmul(self.ph, x), self.pwt)


def _rewrite_adaptive_pools(model: nn.Module, x: torch.Tensor) -> int:
    """Replace ``nn.AdaptiveAvgPool2d`` modules whose output size does not divide their input size
    (at ``x``) by exact matrix forms; returns how many were replaced."""
    names = {m: n for n, m in model.named_modules() if isinstance(m, nn.AdaptiveAvgPool2d)}
    seen = {names[m]: (int(t.shape[-2]), int(t.shape[-1]))
            for m, t in probe_inputs(model, names, x).items() if isinstance(t, torch.Tensor)}
    replaced = 0
    for name, (h, w) in seen.items():
        mod = model.get_submodule(name)
        out = mod.output_size if isinstance(mod.output_size, tuple) else (mod.output_size, mod.output_size)
        oh, ow = (h if out[0] is None else out[0]), (w if out[1] is None else out[1])
        if h % oh or w % ow:
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child,
                    _MatrixAdaptiveAvgPool2d((h, w), (oh, ow)))
            replaced += 1
    return replaced


def _resize_matrix(op: Any, n: int, axis: int, other: int) -> torch.Tensor:
    """(out, n) matrix of a separable resize ``op`` along ``axis`` (2: H, 3: W), found by resizing
    the unit basis images (interpolation weights sum to one, so the other axis drops out)."""
    if axis == 2:
        basis = torch.eye(n).reshape(n, 1, n, 1).expand(n, 1, n, other).contiguous()
        return op(basis)[:, 0, :, 0].t().contiguous()
    basis = torch.eye(n).reshape(n, 1, 1, n).expand(n, 1, other, n).contiguous()
    return op(basis)[:, 0, 0, :].t().contiguous()


def _aa_resize_symbolic(mode: str) -> Any:
    """ONNX symbolic for ``aten::_upsample_{mode}2d_aa`` (antialiased resize, which the exporter
    lacks): at the traced size it is exactly ``A_h @ x @ A_w^T`` with constant matrices taken from
    PyTorch's own kernel."""
    from torch.onnx import symbolic_helper as sh  # loaded only when exporting to ONNX (the export extra)

    def symbolic(g: Any, x: Any, output_size: Any, align_corners: Any, scale_factors: Any) -> Any:
        sizes = sh._get_tensor_sizes(x)
        if sizes is None or any(v is None for v in sizes[-2:]):
            raise ValueError(f"antialiased {mode} resize needs static spatial sizes for ONNX export")
        h, w = int(sizes[-2]), int(sizes[-1])
        out = sh._maybe_get_const(output_size, "is")
        scales = sh._maybe_get_const(scale_factors, "fs")
        corners = bool(sh._maybe_get_const(align_corners, "b"))
        by_scale = sh._is_value(out) or out is None or (isinstance(out, (list, tuple)) and not out)
        if by_scale:
            scales = [float(v) for v in scales]
            out = [int(h * scales[0]), int(w * scales[1])]
        oh, ow = int(out[0]), int(out[1])

        def resize(t: torch.Tensor, axis: int) -> torch.Tensor:
            if by_scale:
                factor = (scales[0], 1.0) if axis == 2 else (1.0, scales[1])
                return F.interpolate(t, scale_factor=factor, mode=mode, align_corners=corners, antialias=True,
                                     recompute_scale_factor=False)
            size = (oh, t.shape[-1]) if axis == 2 else (t.shape[-2], ow)
            return F.interpolate(t, size=size, mode=mode, align_corners=corners, antialias=True)

        # The basis images keep the real other side: PyTorch special-cases sides of length 1.
        a_h = _resize_matrix(lambda t: resize(t, 2), h, 2, w)
        a_wt = _resize_matrix(lambda t: resize(t, 3), w, 3, h).t().contiguous()
        y = g.op("MatMul", g.op("Constant", value_t=a_h), x)
        return g.op("MatMul", y, g.op("Constant", value_t=a_wt))

    return symbolic


_SYMBOLICS_REGISTERED = False


def _register_onnx_symbolics() -> None:
    global _SYMBOLICS_REGISTERED
    if _SYMBOLICS_REGISTERED:
        return
    for mode in ("bilinear", "bicubic"):
        torch.onnx.register_custom_op_symbolic(f"aten::_upsample_{mode}2d_aa", _aa_resize_symbolic(mode), 9)
    _SYMBOLICS_REGISTERED = True


def _short(err: BaseException) -> str:
    """The first line of an exporter error (they append whole IR graphs)."""
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:400]


def _write_onnx(model: nn.Module, x: torch.Tensor, n_out: int, path: Path, opset: int, dynamic_batch: bool) -> None:
    _register_onnx_symbolics()
    out_names = ["output"] if n_out == 1 else [f"output{i}" for i in range(n_out)]
    axes = {name: {0: "batch"} for name in ["input", *out_names]} if dynamic_batch else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=opset, input_names=["input"],
                              output_names=out_names, dynamic_axes=axes, do_constant_folding=True)
    except Exception as err:  # the exporter raises many private error types
        raise ValueError(f"ONNX export failed: {type(err).__name__}: {_short(err)}") from None


def _add_onnx_metadata(path: Path, metadata: Mapping[str, str]) -> None:
    """Store ``metadata`` in the ONNX file's ``metadata_props`` (read back by onnxruntime's model metadata)."""
    try:
        import onnx  # optional: the export extra
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ValueError("ONNX metadata needs the onnx package: pip install 'leannets[export]'") from err
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = str(key), str(value)
    onnx.save(proto, str(path))


def _write_torchscript(model: nn.Module, x: torch.Tensor, path: Path) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, (x,), check_trace=False)
            torch.jit.save(traced, str(path))
    except Exception as err:  # tracing raises RuntimeError/TracingCheckError with long graphs
        raise ValueError(f"TorchScript export failed: {type(err).__name__}: {_short(err)}") from None


def export_model(
    model: nn.Module,
    path: str | os.PathLike,
    fmt: str = "onnx",
    input_size: Sequence[int] | None = None,
    fold_bn: bool = False,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    verify: bool = True,
    verify_batch: int = 2,
    tolerance: float = 1e-4,
    seed: int = 0,
    metadata: Mapping[str, str] | None = None,
) -> ExportResult:
    """Export ``model`` (eval mode) to ``path`` and, by default, check the file.

    Args:
        model: the module (it is deep-copied; the caller's module is not changed).
        path: output file; written atomically (temp file in the same folder + rename).
        fmt: ``onnx``, ``torchscript`` or ``safetensors`` (the model's own tensors and ``metadata``, read without
            pickle; ``create_model(name, pretrained=FILE)`` rebuilds the model from it).
        input_size: (C, H, W) traced; default :func:`smallest_input_size`.
        fold_bn: fold conv→BN pairs first (:func:`leannets.analysis.fold_bn.fold_bn`); the file
            is still verified against the unfolded model.
        opset: ONNX opset.
        dynamic_batch: keep the batch dimension dynamic in ONNX.
        verify: run the exported file (onnxruntime / ``torch.jit.load``) on a batch of
            ``verify_batch`` random images and compare with the PyTorch model.
        tolerance: largest accepted error relative to ``max(1, max |reference|)``;
            a larger error raises ``ValueError``.
        seed: seed of the random probe inputs.
        metadata: ONNX: stored in the file's ``metadata_props``; safetensors: in its ``__metadata__`` (e.g.
            :meth:`LoadedModel.deployment_metadata`: input size, mean/std, class names, resize rule).
    """
    fmt = _check_format(fmt)
    if fmt == "safetensors":
        return _export_safetensors(model, Path(path), input_size, fold_bn, verify, verify_batch, tolerance, seed,
                                   metadata)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).eval()
    input_size = _check_input_size(input_size or smallest_input_size(model))
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, *input_size, generator=gen)
    pairs = None
    reference = model  # the file is always checked against the unmodified model
    if fold_bn:
        model = _fold(model, x, inplace=False)
        pairs = int(getattr(model, "folded_bn_pairs", 0))
    with torch.no_grad():
        n_out = len(flatten_outputs(model(x)))  # also validates the input size with a clear error
    wrapped = _FlatOutputs(model).eval()
    rewritten = 0
    if fmt == "onnx":  # on a copy: the file is verified against the unmodified model
        wrapped = copy.deepcopy(wrapped)
        rewritten = _rewrite_adaptive_pools(wrapped, x)
    with atomic_write(path) as tmp:
        if fmt == "onnx":
            _write_onnx(wrapped, x, n_out, tmp, opset, dynamic_batch)
            if metadata:
                _add_onnx_metadata(tmp, metadata)
        else:
            _write_torchscript(wrapped, x, tmp)
    result = ExportResult(path=str(path), format=fmt, input_size=input_size, folded_bn_pairs=pairs, outputs=n_out)
    if fmt == "onnx" and rewritten:
        result.extra["adaptive_pools_as_matrices"] = rewritten
    if verify:
        batch = verify_batch if (dynamic_batch or fmt == "torchscript") else 1
        xb = torch.randn(batch, *input_size, generator=gen)
        abs_err, rel_err = verify_export(path, fmt, reference, xb)
        result.max_abs_error, result.max_rel_error, result.verified_batch = abs_err, rel_err, batch
        if rel_err > tolerance:
            raise ValueError(f"{path}: exported {fmt} output differs from PyTorch by {rel_err:.3g} "
                             f"(relative), more than the tolerance {tolerance:g}")
    return result


def _export_safetensors(model: nn.Module, path: Path, input_size: Sequence[int] | None, fold_bn: bool, verify: bool,
                        verify_batch: int, tolerance: float, seed: int,
                        metadata: Mapping[str, str] | None) -> ExportResult:
    """The model's state dict as .safetensors, checked by rebuilding the model from the file."""
    from leannets._io import save_safetensors
    from leannets.models import create_model

    if fold_bn:
        raise ValueError("--fold-bn does not apply to safetensors: the file holds the model's own tensors, "
                         "rebuilt with create_model(name, pretrained=FILE); fold after loading")
    name = getattr(model, "model_name", None)
    meta = {"format": "pt", **dict(metadata or {})}
    if name:
        meta.setdefault("leannets.model", name)
    model = copy.deepcopy(model).eval()
    size = _check_input_size(input_size or smallest_input_size(model))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_safetensors(path, dict(model.state_dict()), meta)
    result = ExportResult(path=str(path), format="safetensors", input_size=size, folded_bn_pairs=None, outputs=1)
    if verify and name:
        kwargs = json.loads(meta.get("leannets.model_kwargs", "{}"))
        rebuilt = create_model(name, in_chans=size[0], pretrained=str(path), **kwargs).eval()
        x = torch.randn(verify_batch, *size, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            ref, got = flatten_outputs(model(x)), flatten_outputs(rebuilt(x))
        err = max(float((r - g).abs().max()) for r, g in zip(ref, got))
        scale = max(1.0, max(float(r.abs().max()) for r in ref))
        result.max_abs_error, result.max_rel_error, result.verified_batch = err, err / scale, verify_batch
        result.outputs = len(ref)
        if err / scale > tolerance:
            raise ValueError(f"{path}: the model rebuilt from the file differs by {err / scale:.3g} (relative)")
    return result


def load_exported(path: str | os.PathLike, fmt: str | None = None) -> Any:
    """An onnxruntime ``InferenceSession`` or a TorchScript module for an exported file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"exported model not found: {path}")
    fmt = _check_format(fmt or ("onnx" if path.suffix == ".onnx" else "torchscript"))
    if fmt == "onnx":
        try:
            import onnxruntime as ort  # optional: the export extra
        except ImportError as err:  # pragma: no cover - depends on the install
            raise ValueError("checking ONNX files needs onnxruntime: pip install 'leannets[export]'") from err
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, torch.get_num_threads())
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(path), map_location="cpu")


def run_exported(runner: Any, x: torch.Tensor) -> list[torch.Tensor]:
    """Run a loaded ONNX session or TorchScript module; outputs as a list of tensors."""
    if isinstance(runner, torch.jit.ScriptModule):
        # The unoptimised executor runs the saved graph as is (no profiling re-compiles): the same
        # numbers, a fraction of the first-call time.
        with torch.no_grad(), torch.jit.optimized_execution(False):
            return flatten_outputs(runner(x))
    feeds = {runner.get_inputs()[0].name: x.detach().cpu().numpy()}
    return [torch.from_numpy(o) for o in runner.run(None, feeds)]


def onnx_deployment_metadata(session: Any, path: str | os.PathLike) -> dict[str, Any]:
    """What :meth:`LoadedModel.deployment_metadata` stored in an ONNX file, parsed: model, input_size, mean, std,
    class_names, crop_pct, quantized (``None`` for fp32)."""
    meta = session.get_modelmeta().custom_metadata_map
    if "leannets.input_size" not in meta:
        raise ValueError(f"{path} has no leannets metadata (input size, mean/std, classes): export it with "
                         "`leannets export CHECKPOINT --format onnx`")
    return {"model": meta.get("leannets.model", Path(path).stem),
            "input_size": tuple(int(v) for v in json.loads(meta["leannets.input_size"])),
            "mean": list(json.loads(meta.get("leannets.mean", "[]"))),
            "std": list(json.loads(meta.get("leannets.std", "[]"))),
            "class_names": list(json.loads(meta.get("leannets.class_names", "[]"))),
            "crop_pct": float(meta.get("leannets.crop_pct", 0.875)), "quantized": meta.get("leannets.quantized")}


def evaluate_onnx(path: str | os.PathLike, data: Mapping[str, Any]) -> dict[str, Any]:
    """Top-1 (and top-5 above 5 classes) of an exported classifier on a dataset's evaluation split (a resolved
    ``data`` recipe section), with the mean/std and input size its metadata states (a quantized file the same)."""
    from leannets.data import build_dataset, make_loader

    runner = load_exported(path, "onnx")
    meta = onnx_deployment_metadata(runner, path)
    size = meta["input_size"]
    mean, std = meta["mean"] or None, meta["std"] or None
    splits = build_dataset(data)
    loader = make_loader(splits.eval, data, train=False, mean=mean, std=std)
    correct1 = correct5 = n = 0
    for batch in loader:
        x, y = batch[0], batch[1]
        if tuple(x.shape[1:]) != size:
            x = nn.functional.interpolate(x, size=size[1:], mode="bilinear", antialias=True, align_corners=False)
        logits = run_exported(runner, x.float())[0]
        if logits.dim() != 2:
            raise ValueError(f"{path}: eval of an exported file supports classifiers; it returns {tuple(logits.shape)}")
        top = logits.topk(min(5, logits.shape[1]), 1).indices
        correct1 += int((top[:, 0] == y).sum())
        correct5 += int((top == y[:, None]).any(1).sum())
        n += len(y)
    metrics = {"acc1": correct1 / max(n, 1)}
    if logits.shape[1] > 5:
        metrics["acc5"] = correct5 / max(n, 1)
    return {"metrics": metrics, "num_samples": n, "split": "eval", "checkpoint": str(path), "data": data["name"],
            "model": meta["model"], "quantized": meta["quantized"],
            "report": None}


def verify_export(path: str | os.PathLike, fmt: str, model: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """(max absolute error, max error relative to ``max(1, max |reference|)``) of the exported
    file against ``model`` on input ``x`` (over all outputs)."""
    runner = load_exported(path, fmt)
    with torch.no_grad():
        ref = flatten_outputs(model.eval()(x))
    got = run_exported(runner, x)
    if len(got) != len(ref):
        raise ValueError(f"{path}: exported model returns {len(got)} outputs, PyTorch returns {len(ref)}")
    abs_err = rel_err = 0.0
    for r, g in zip(ref, got):
        if tuple(r.shape) != tuple(g.shape):
            raise ValueError(f"{path}: exported output shape {tuple(g.shape)} != PyTorch {tuple(r.shape)}")
        diff = float((r.float() - g.float()).abs().max()) if r.numel() else 0.0
        scale = max(1.0, float(r.float().abs().max()) if r.numel() else 1.0)
        abs_err, rel_err = max(abs_err, diff), max(rel_err, diff / scale)
    return abs_err, rel_err


@dataclass
class LoadedModel:
    """A model ready for export/prediction with what is known about its inputs."""

    name: str
    model: nn.Module
    input_size: tuple[int, int, int]
    task: str = "classification"
    class_names: list[str] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    checkpoint: str | None = None
    recipe: dict[str, Any] = field(default_factory=dict)

    def deployment_metadata(self) -> dict[str, str]:
        """What a deployed file needs to be used correctly without leannets: model, task, input size, the
        resize rule, mean/std and class names (``leannets.*`` keys; lists as JSON)."""
        data = self.recipe.get("data") or {}
        normalize = bool(data.get("normalize", True)) and bool(self.mean) and bool(self.std)
        crop_pct = float(data.get("crop_pct") or 0.875)
        c, h, w = self.input_size
        if max(h, w) <= SMALL_INPUT or crop_pct >= 1.0:
            resize = f"the whole image resized to {h}x{w} (bicubic)"
        else:
            resize = f"shorter side resized to {max(h, w)}/{crop_pct:g} (bicubic), then a centre {h}x{w} crop"
        return {"leannets.model": self.name, "leannets.task": self.task,
                "leannets.input_size": json.dumps(list(self.input_size)), "leannets.channels": "L" if c == 1 else "RGB",
                "leannets.resize": resize, "leannets.crop_pct": f"{crop_pct:g}", "leannets.scale": "pixels / 255",
                "leannets.mean": json.dumps(self.mean if normalize else []),
                "leannets.std": json.dumps(self.std if normalize else []),
                "leannets.class_names": json.dumps(self.class_names)}


def load_model_source(source: str, num_classes: int | None = None) -> LoadedModel:
    """A checkpoint file/run folder (loaded with ``weights_only=True`` by the engine) or a registered
    model name (fresh weights) as a :class:`LoadedModel` in eval mode."""
    path = Path(source)
    if path.exists():
        if num_classes is not None:
            raise ValueError("--num-classes applies to model names only; a checkpoint fixes its classifier")
        model, ckpt = load_model(path)
        info = ckpt.get("data_info") or {}
        name = str(ckpt["recipe"]["model"]["name"])
        size = tuple(int(v) for v in info.get("input_size") or ()) or None
        task = model_info(name).task if is_model(name) else "classification"
        if size is None or len(size) != 3:
            size = smallest_input_size(model)
        return LoadedModel(name=name, model=model, input_size=size, task=task,  # type: ignore[arg-type]
                           class_names=[str(c) for c in info.get("class_names") or []],
                           mean=[float(v) for v in info.get("mean") or []],
                           std=[float(v) for v in info.get("std") or []], checkpoint=str(ckpt.get("path", path)),
                           recipe=dict(ckpt.get("recipe") or {}))
    if is_model(source):
        info = model_info(source)
        model = create_model(source, num_classes=num_classes).eval()
        return LoadedModel(name=source, model=model, input_size=tuple(info.input_size), task=info.task)
    if any(sep in source for sep in ("/", "\\")) or path.suffix in (".pt", ".pth", ".ckpt"):
        raise FileNotFoundError(f"checkpoint {source} does not exist")
    model_info(source)  # raises ValueError listing the closest registered names
    raise AssertionError("unreachable")


def default_export_path(name: str, fmt: str, out_dir: str | os.PathLike = ".") -> Path:
    """``<out_dir>/<name>.onnx`` or ``<out_dir>/<name>.pt``."""
    return Path(out_dir) / f"{name}{_SUFFIX[_check_format(fmt)]}"
