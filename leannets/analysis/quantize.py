"""int8 ONNX through ONNX Runtime's static quantization (QDQ format): per-channel int8 weights, uint8 activations
calibrated (MinMax) on images given as a tensor.

Only the compute-heavy ops take int8 (``Conv``, ``Gemm``, ``MatMul``); everything between them (activations, the
xUnit's sigmoid gate and its product, additions, pooling) stays fp32, and the result says which op types did. The
file keeps the fp32 file's metadata and adds ``leannets.quantized`` and ``leannets.calibration``."""
from __future__ import annotations

import contextlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from leannets._io import atomic_write

from .export import _add_onnx_metadata, load_exported

__all__ = ["QUANTIZED_OPS", "QuantizeResult", "quantize_int8"]

QUANTIZED_OPS = ("Conv", "Gemm", "MatMul")


@dataclass
class QuantizeResult:
    """What :func:`quantize_int8` wrote: op counts in int8 / fp32 and how far the int8 outputs are from fp32 on the
    calibration images (max abs difference, share of equal top-1 classes)."""

    path: str
    calibration_images: int
    int8_ops: dict[str, int] = field(default_factory=dict)
    fp32_ops: dict[str, int] = field(default_factory=dict)
    max_abs_diff: float = 0.0
    top1_agreement: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _ort() -> Any:
    try:
        import onnxruntime
        from onnxruntime import quantization
    except ImportError as err:
        raise ValueError("int8 quantization needs onnxruntime: pip install 'leannets[export]'") from err
    return onnxruntime, quantization


def _chunks(images: torch.Tensor, dim0: Any) -> list[np.ndarray]:
    """``images`` as float32 arrays for an input whose batch dimension is ``dim0``: 8 images each for a dynamic
    batch; for a static one that many, a short last chunk dropped unless nothing else is left."""
    static = isinstance(dim0, int) and dim0 > 0
    batch = dim0 if static else 8
    chunks = [images[i:i + batch].numpy().astype(np.float32) for i in range(0, len(images), batch)]
    return ([c for c in chunks if len(c) == batch] or chunks) if static else chunks


class _Reader:
    """ONNX Runtime's calibration data reader over prepared input arrays."""

    def __init__(self, chunks: list[np.ndarray], name: str) -> None:
        self._batches: Iterator[np.ndarray] = iter(chunks)
        self.name = name

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self._batches, None)
        return None if x is None else {self.name: x}

    def rewind(self) -> None:  # pragma: no cover - only called by some calibrators
        raise NotImplementedError


def quantize_int8(fp32_path: str | Path, out_path: str | Path, calibration: torch.Tensor, source: str,
                  metadata: Mapping[str, str] | None = None) -> QuantizeResult:
    """Quantize the ONNX file ``fp32_path`` to ``out_path`` (atomically), calibrated on ``calibration`` (the model's
    inputs: normalised float images, (N, C, H, W)); ``source`` names where they came from (metadata)."""
    ort, q = _ort()
    if calibration.dim() != 4 or len(calibration) == 0:
        raise ValueError(f"calibration images must be (N, C, H, W) with N >= 1, got {tuple(calibration.shape)}")
    session = load_exported(fp32_path, "onnx")
    name = session.get_inputs()[0].name
    chunks = _chunks(calibration, session.get_inputs()[0].shape[0])
    with atomic_write(out_path) as tmp, _quiet_root_logger():
        prepared = Path(str(tmp) + ".prep.onnx")
        try:  # ONNX Runtime's recommended pre-processing (shape inference, constant folding of bias Identities)
            q.quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
            q.quantize_static(str(prepared), str(tmp), _Reader(chunks, name), quant_format=q.QuantFormat.QDQ,
                              per_channel=True, weight_type=q.QuantType.QInt8, activation_type=q.QuantType.QUInt8,
                              op_types_to_quantize=list(QUANTIZED_OPS), calibrate_method=q.CalibrationMethod.MinMax)
        finally:
            prepared.unlink(missing_ok=True)
        int8, fp32 = _op_counts(tmp)
        _add_onnx_metadata(tmp, {**dict(metadata or {}),
                                 "leannets.quantized": (f"int8, ONNX Runtime {ort.__version__} static QDQ: per-channel "
                                                        "int8 weights, uint8 activations (MinMax); int8 ops: "
                                                        + ", ".join(QUANTIZED_OPS) + "; all others fp32"),
                                 "leannets.calibration": f"{len(calibration)} images from {source}"})
    result = QuantizeResult(str(out_path), len(calibration), int8, fp32)
    int8_session = load_exported(out_path, "onnx")
    ref = np.concatenate([session.run(None, {name: c})[0] for c in chunks])
    got = np.concatenate([int8_session.run(None, {name: c})[0] for c in chunks])
    result.max_abs_diff = float(np.abs(ref - got).max())
    if ref.ndim == 2 and ref.shape[1] > 1:
        result.top1_agreement = float((ref.argmax(1) == got.argmax(1)).mean())
    return result


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """ONNX Runtime's quantizer logs advice on the root logger; the result reports what matters."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _op_counts(path: Path) -> tuple[dict[str, int], dict[str, int]]:
    """(int8 op types: nodes fed by DequantizeLinear, fp32 op types: the other compute nodes) of a QDQ model."""
    import onnx
    graph = onnx.load(str(path)).graph
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    int8, fp32 = Counter(), Counter()
    for n in graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        (int8 if n.op_type in QUANTIZED_OPS and n.input and n.input[0] in dequantized else fp32)[n.op_type] += 1
    return dict(int8), dict(fp32)
