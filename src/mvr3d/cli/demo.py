"""``mvr3d demo``: the whole pipeline on built-in shapes, offline, in a few minutes on a CPU."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from mvr3d.cli.common import output_lock
from mvr3d.data import make_demo_dataset
from mvr3d.engine import predict_files
from mvr3d.engine.benchmark import run_benchmark
from mvr3d.errors import WeightsNotFoundError
from mvr3d.models import MVRConfig, MVRDetector
from mvr3d.models.backbones import create_backbone
from mvr3d.render import RenderConfig

log = logging.getLogger(__name__)


def demo_config(weights: str | None, seed: int) -> MVRConfig:
    """Small enough for a 2-core CPU; full-size settings are the MVRConfig defaults."""
    return MVRConfig(
        weights=weights,
        render=RenderConfig(render_size=336, image_size=112, depth_range="scan"),
        views="paper3",
        augment_rotations=2,
        iterations=80,
        batch_size=8,
        lr=1e-3,
        warmup=10,
        map_blur_sigma=2.0,
        seed=seed,
    )


def _resolve_weights(requested: str | None) -> str | None:
    if requested is not None:
        return requested
    try:
        create_backbone("dinov2_vits14", None, img_size=112)
        return None
    except WeightsNotFoundError as error:
        log.warning("%s\nThe demo goes on with a random-init backbone: expect weak results.", error)
        return "random"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run fit, predict and evaluation on built-in demo data")
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")
    parser.add_argument("--weights", help="backbone weights file, or 'random' (default: offline DINOv2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    with output_lock(args.out):
        data = make_demo_dataset(args.out / "data", seed=args.seed)
        config = demo_config(_resolve_weights(args.weights), args.seed)
        summary = run_benchmark(data, args.out / "results", config, save_models=True)
        heatmaps = []
        for entry in summary.classes:
            category = entry.category
            detector = MVRDetector.load(args.out / "results" / "models" / category)
            out = args.out / "predictions" / category
            predict_files(detector, data / category / "test", out)
            heatmaps.append(out)
    print((args.out / "results" / "results.md").read_text())
    print(f"demo finished in {time.perf_counter() - started:.0f} s")
    print(f"  data:        {data}")
    print(f"  results:     {args.out / 'results' / 'results.json'}")
    for path in heatmaps:
        print(f"  predictions: {path}  (<scan>.txt scores, <scan>.ply heatmaps, scores.csv)")
    return 0
