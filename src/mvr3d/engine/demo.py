"""The demo workflow: build the built-in demo data, benchmark a method on it (the default
method unless told otherwise), predict each class's test scans with the fitted models.
Small enough for a 2-core CPU in a few minutes."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from mvr3d.data import make_demo_dataset
from mvr3d.engine.benchmark import run_benchmark
from mvr3d.engine.predict import predict_files
from mvr3d.engine.results import BenchmarkResults
from mvr3d.errors import WeightsNotFoundError
from mvr3d.models import MVRConfig
from mvr3d.models.base import load_detector
from mvr3d.models.components.backbones import create_backbone
from mvr3d.models.mvr.presets import preset_fields
from mvr3d.models.registry import DEFAULT_METHOD

log = logging.getLogger(__name__)


@dataclass
class DemoRun:
    data: Path
    results: BenchmarkResults
    results_dir: Path
    predictions: list[Path]


def demo_config(weights: str | None, seed: int) -> MVRConfig:
    """The ``cpu`` preset: small enough for a 2-core CPU (full size: the MVRConfig defaults)."""
    return MVRConfig.from_dict({**preset_fields("cpu"), "weights": weights, "seed": seed})


def resolve_weights(requested: str | None) -> str | None:
    """The weights asked for; else the offline DINOv2 if present; else random, with a warning."""
    if requested is not None:
        return requested
    try:
        create_backbone("dinov2_vits14", None, img_size=112)
        return None
    except WeightsNotFoundError as error:
        log.warning("%s\nThe demo goes on with a random-init backbone: expect weak results.", error)
        return "random"


def run_demo(out: Path, seed: int = 0, weights: str | None = None, method: str = DEFAULT_METHOD) -> DemoRun:
    data = make_demo_dataset(out / "data", seed=seed)
    results_dir = out / "results"
    config = demo_config(resolve_weights(weights) if method == "mvr" else weights, seed)
    results = run_benchmark(data, results_dir, config, method=method, save_models=True)
    predictions = []
    for entry in results.classes:
        detector = load_detector(results_dir / "models" / entry.category)
        folder = out / "predictions" / entry.category
        predict_files(detector, sample_scans(data / entry.category / "test", out / "samples" / entry.category), folder)
        predictions.append(folder)
    return DemoRun(data, results, results_dir, predictions)


def sample_scans(test: Path, folder: Path) -> Path:
    """A folder with the first good and the first defective test scan: the benchmark has
    scored every scan already, so ``predict`` shows its outputs on two of them."""
    folder.mkdir(parents=True, exist_ok=True)
    scans = sorted(test.glob("*.pcd"))
    for scan in [next(p for p in scans if "good" in p.stem), next(p for p in scans if "good" not in p.stem)]:
        shutil.copyfile(scan, folder / scan.name)
    return folder
