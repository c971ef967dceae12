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
import os
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn

__all__ = ["FORMATS", "DEFAULT_OPSET", "ExportResult", "default_export_path", "export_model", "flatten_outputs",
           "load_exported", "run_exported", "smallest_input_size", "verify_export"]

FORMATS = ("onnx", "torchscript")
DEFAULT_OPSET = 17
_SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}


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


def _tmp_path(path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    return Path(tmp)


def _write_onnx(model: nn.Module, x: torch.Tensor, n_out: int, path: Path, opset: int, dynamic_batch: bool) -> None:
    out_names = ["output"] if n_out == 1 else [f"output{i}" for i in range(n_out)]
    axes = {name: {0: "batch"} for name in ["input", *out_names]} if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=opset, input_names=["input"],
                          output_names=out_names, dynamic_axes=axes, do_constant_folding=True)


def _write_torchscript(model: nn.Module, x: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, (x,), check_trace=False)
        torch.jit.save(traced, str(path))


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
) -> ExportResult:
    """Export ``model`` (eval mode) to ``path`` and, by default, check the file.

    Args:
        model: the module (it is deep-copied; the caller's module is not changed).
        path: output file; written atomically (temp file in the same folder + rename).
        fmt: ``onnx`` or ``torchscript``.
        input_size: (C, H, W) traced; default :func:`smallest_input_size`.
        fold_bn: fold conv→BN pairs first (:func:`leannets.analysis.fold_bn.fold_bn`).
        opset: ONNX opset.
        dynamic_batch: keep the batch dimension dynamic in ONNX.
        verify: run the exported file (onnxruntime / ``torch.jit.load``) on a batch of
            ``verify_batch`` random images and compare with the PyTorch model.
        tolerance: largest accepted error relative to ``max(1, max |reference|)``;
            a larger error raises ``ValueError``.
        seed: seed of the random probe inputs.
    """
    fmt = _check_format(fmt)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).eval()
    input_size = _check_input_size(input_size or smallest_input_size(model))
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, *input_size, generator=gen)
    pairs = None
    if fold_bn:
        from .fold_bn import fold_bn as _fold

        model = _fold(model, x, inplace=True)
        pairs = int(getattr(model, "folded_bn_pairs", 0))
    with torch.no_grad():
        n_out = len(flatten_outputs(model(x)))  # also validates the input size with a clear error
    wrapped = _FlatOutputs(model).eval()
    tmp = _tmp_path(path)
    try:
        if fmt == "onnx":
            _write_onnx(wrapped, x, n_out, tmp, opset, dynamic_batch)
        else:
            _write_torchscript(wrapped, x, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    result = ExportResult(path=str(path), format=fmt, input_size=input_size, folded_bn_pairs=pairs, outputs=n_out)
    if verify:
        batch = verify_batch if (dynamic_batch or fmt == "torchscript") else 1
        xb = torch.randn(batch, *input_size, generator=gen)
        abs_err, rel_err = verify_export(path, fmt, model, xb)
        result.max_abs_error, result.max_rel_error, result.verified_batch = abs_err, rel_err, batch
        if rel_err > tolerance:
            raise ValueError(f"{path}: exported {fmt} output differs from PyTorch by {rel_err:.3g} "
                             f"(relative), more than the tolerance {tolerance:g}")
    return result


def load_exported(path: str | os.PathLike, fmt: str | None = None) -> Any:
    """An onnxruntime ``InferenceSession`` or a TorchScript module for an exported file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"exported model not found: {path}")
    fmt = _check_format(fmt or ("onnx" if path.suffix == ".onnx" else "torchscript"))
    if fmt == "onnx":
        try:
            import onnxruntime as ort
        except ImportError as err:  # pragma: no cover - depends on the install
            raise ValueError("checking ONNX files needs onnxruntime: pip install 'leannets[export]'") from err
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, torch.get_num_threads())
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
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


def default_export_path(name: str, fmt: str, out_dir: str | os.PathLike = ".") -> Path:
    """``<out_dir>/<name>.onnx`` or ``<out_dir>/<name>.pt``."""
    return Path(out_dir) / f"{name}{_SUFFIX[_check_format(fmt)]}"
