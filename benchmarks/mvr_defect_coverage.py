"""Where the template reference misses defects: how much of each defective scan's defect the
views see, against the scan's object score and the good scans above it.

Reads the raw point errors saved by ``mvr_reference_variants.py --save-errors DIR`` (object
score: mean of the top 1 %), re-places every defective scan as the product does and renders
it with the detector's views (``--views``) to count its defect points seen in at least one view.

  usage: python benchmarks/mvr_defect_coverage.py --data ROOT --errors DIR --class NAME [--views SPEC]
Prints one row per test scan, lowest object score first.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from mvr3d.data.real3d import Real3DAD
from mvr3d.models import MVRConfig, MVRDetector
from mvr3d.render import render_batch
from mvr3d.render.poses import views_spec


def seen_shares(detector: MVRDetector, points: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """Share of the defect and of the whole scan seen by a view; defect's median template distance (voxels)."""
    with torch.no_grad():
        placed = detector._placed(points)
        batch = render_batch([placed.rendered], detector._poses(), detector.config.render, centres=[placed.centre],
                             radius=detector.radius_)
    visible = batch.visible[:, : len(placed.cloud)].cpu().numpy().any(axis=0)
    deviation = placed.deviation.cpu().numpy()
    return float(visible[labels].mean()), float(visible.mean()), float(np.median(deviation[labels]) / detector.aligner_.voxel_)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--errors", type=Path, required=True)
    parser.add_argument("--class", dest="category", required=True)
    parser.add_argument("--views", default="paper3")
    args = parser.parse_args()
    config = MVRConfig(reference="template", view_selection="scan", smoothing_k=0, views=views_spec(args.views))
    detector = MVRDetector(config).fit(Real3DAD(args.data, args.category, "train"), progress=False)
    rows = []
    for sample in Real3DAD(args.data, args.category, "test"):
        errors = np.load(args.errors / args.category / f"{sample.name}.npy")
        score = float(np.sort(errors)[-max(1, len(errors) // 100):].mean())
        facts = None if sample.label == 0 else seen_shares(detector, sample.points, sample.point_labels.astype(bool))
        rows.append((sample.name, score, facts))
    good = [score for _, score, facts in rows if facts is None]
    print("| scan | object score | good scans above | defect seen | scan seen | defect off template (voxels) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, score, facts in sorted(rows, key=lambda row: row[1]):
        if facts is None:
            print(f"| {name} | {score:.3f} | | | | |")
        else:
            above = sum(g > score for g in good)
            print(f"| {name} | {score:.3f} | {above} | {facts[0]:.2f} | {facts[1]:.2f} | {facts[2]:.1f} |")


if __name__ == "__main__":
    main()
