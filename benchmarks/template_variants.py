"""Point-score variants of the template method, scored from one registration per scan.

Each test scan is registered once (the ``template`` detector's aligner and fused
reference); every variant below then turns the same registered points into point scores,
so the table compares scoring rules, not registration luck. Per class and variant: O-ROC,
P-ROC and the largest good-scan nuisance correlation (metrics/nuisance.py).

Variants:
  abs_z        unsigned distance to the local plane as robust z-scores per scan (the
               ``template`` method as it stands)
  abs          unsigned distance in units of the part's diagonal (no per-scan scaling)
  smoothK      |mean over the point's K nearest scan points of their signed distances|
               (signs aligned to the point's own plane normal), diagonal units: scanner
               noise averages out over K points, a smooth bump does not
  smoothK_z    smoothK as robust z-scores per scan
  shareF(_z)   as smoothK with K = F x the scan's point count (at least 8)

  usage: python benchmarks/template_variants.py --data ROOT --out DIR [--classes ...]
Writes DIR/classes/<class>.json (a rerun skips finished classes) and DIR/table.md.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from mvr3d.baselines.template import TemplateDetector
from mvr3d.data.real3d import Real3DAD
from mvr3d.geometry.surface import smoothed_offset
from mvr3d.geometry.voxels import bounding_diagonal
from mvr3d.metrics.ranking import PooledScores
from mvr3d.models.components.scoring import robust_standardise
from mvr3d.scans import object_score
from variant_tables import facts_of, run_classes, variant_parser, variant_results

SMOOTHING = (16, 64, 256)
# Neighbourhoods as a share of the scan's points (density-free: a defect covers 1-4.5 %).
SHARES = (0.0005, 0.002)


def variant_scores(detector: TemplateDetector, points: np.ndarray, diagonal: float) -> dict[str, np.ndarray]:
    """Every variant's point scores from one registration (the template method's own
    signed distance and smoothing, geometry/surface.py)."""
    reference = detector.reference_
    j, moved = detector.aligner_.to_template_frame(points.astype(np.float64))
    moved = torch.as_tensor(reference.from_template(j, moved), dtype=torch.float64, device=reference.points.device)
    signed, normals, _ = reference.signed_distance(moved)
    counts = [len(points)]
    out = {"abs": (signed.abs() / diagonal).float(), "abs_z": robust_standardise(signed.abs(), counts)}
    sizes = {f"smooth{k}": k for k in SMOOTHING}
    sizes.update({f"share{share:g}": max(8, round(share * len(points))) for share in SHARES})
    for name, k in sizes.items():
        local = smoothed_offset(moved, signed, normals, k) / diagonal
        out[name] = local.float()
        out[f"{name}_z"] = robust_standardise(local, counts)
    return {name: values.cpu().numpy() for name, values in out.items()}


def run_class(root: Path, category: str, seed: int) -> dict:
    train, test = Real3DAD(root, category, "train"), Real3DAD(root, category, "test")
    detector = TemplateDetector(seed=seed).fit(train, progress=False)
    diagonal = bounding_diagonal(detector.reference_.points.cpu().numpy())
    pooled: dict[str, PooledScores] = {}
    objects: dict[str, dict[str, float]] = {}
    labels, stems = [], []
    started = time.perf_counter()
    for sample in test:
        scores = variant_scores(detector, sample.points, diagonal)
        point_labels = sample.point_labels if sample.point_labels is not None else np.zeros(len(sample.points))
        for name, values in scores.items():
            pooled.setdefault(name, PooledScores()).add(values, point_labels)
            objects.setdefault(name, {})[sample.name] = object_score(values, "top1", 0.01)
        labels.append(sample.label)
        stems.append(sample.name)
    seconds = (time.perf_counter() - started) / len(test)
    facts = facts_of(root, category)
    return {"category": category, "seconds_per_object": seconds, "variants": variant_results(objects, pooled, stems, labels, facts)}


def main() -> None:
    args = variant_parser(__doc__).parse_args()
    run_classes(args, lambda category: run_class(args.data, category, args.seed))


if __name__ == "__main__":
    main()
