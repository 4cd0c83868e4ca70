"""Post-processing variants of MVR with the template reference, scored from one pass per scan.

Each test scan is registered, rendered and compared with its template's tokens once
(``MVRConfig(reference="template", view_selection="scan")``, no smoothing, raw errors);
every variant then turns the same point errors into point and object scores, so the
table compares scoring rules, not registration luck. Per class and variant: O-ROC, P-ROC
and the largest good-scan nuisance correlation (metrics/nuisance.py).

Variants (the MVRConfig fields they stand for):
  raw          the point errors as they are (smoothing_k 0)
  smoothK      mean error over each point's K nearest scan points (smoothing_k K)
  ..._z        as robust z-scores of the scan's own scores (standardise_scores)
  sparseP      raw errors times min(1, median / local point spacing) ** P (sparse_discount P;
               the product's own function on the same errors)
  sparseP_smoothK  sparseP, then smoothK
  name@F       with --object-fractions: the object score as the mean of the top F of point
               scores instead of the top 1 % (point scores, so P-ROC, as ``name``)

  usage: python benchmarks/mvr_reference_variants.py --data ROOT --out DIR [--classes ...] [--save-errors DIR]
             [--pose-search sparse|dense] [--views SPEC] [--object-fractions F ...] [--max-points N] [--scan-voxel R]
Writes DIR/classes/<class>.json (a rerun skips finished classes), DIR/table.md and
DIR/run.json (settings, versions, git hash, machine).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from mvr3d.data.real3d import Real3DAD
from mvr3d.metrics.ranking import PooledScores
from mvr3d.models import MVRConfig, MVRDetector
from mvr3d.models.components.scoring import discount_sparse, robust_standardise
from mvr3d.render.poses import views_spec
from mvr3d.scans import object_score
from variant_tables import facts_of, run_classes, variant_parser, variant_results

SMOOTHING = (32, 128)
SPARSE_POWERS = (1.0, 1.5, 2.0)
SPARSE_SMOOTHING = (8, 32)
OBJECT_FRACTION = 0.01  # the product's default (MVRConfig.top_fraction)


def config(seed: int, pose_search: str = "sparse", views: str = "paper3", max_points: int | None = None,
           scan_voxel: float = 0.0) -> MVRConfig:
    return MVRConfig(reference="template", view_selection="scan", smoothing_k=0, seed=seed, pose_search=pose_search,
                     views=views_spec(views), max_points=max_points, scan_voxel=scan_voxel)


def variant_scores(points: np.ndarray, errors: np.ndarray) -> dict[str, np.ndarray]:
    """Every variant's point scores from one scan's raw point errors."""
    _, neighbours = cKDTree(points).query(points, k=max(SMOOTHING), workers=-1)
    out = {"raw": errors}
    out.update({f"smooth{k}": errors[neighbours[:, :k]].mean(axis=1) for k in SMOOTHING})
    for name in list(out):
        out[f"{name}_z"] = robust_standardise(torch.from_numpy(out[name]), [len(points)]).numpy()
    for power in SPARSE_POWERS:
        discounted = discount_sparse(torch.from_numpy(points), torch.from_numpy(errors), power).numpy()
        out[f"sparse{power:g}"] = discounted
        out.update({f"sparse{power:g}_smooth{k}": discounted[neighbours[:, :k]].mean(axis=1) for k in SPARSE_SMOOTHING})
    return out


def run_class(root: Path, category: str, seed: int, errors_dir: Path | None = None, pose_search: str = "sparse",
              fractions: tuple[float, ...] = (), views: str = "paper3", max_points: int | None = None,
              scan_voxel: float = 0.0) -> dict:
    started = time.perf_counter()
    detector = MVRDetector(config(seed, pose_search, views, max_points, scan_voxel)).fit(Real3DAD(root, category, "train"), progress=False)
    fit_seconds = time.perf_counter() - started
    pooled: dict[str, PooledScores] = {}
    objects: dict[str, dict[str, float]] = {}
    labels, stems = [], []
    started = time.perf_counter()
    for sample in Real3DAD(root, category, "test"):
        errors = detector.score(sample.points).point_scores
        if errors_dir is not None:  # kept to try further scoring rules without rendering again
            (errors_dir / category).mkdir(parents=True, exist_ok=True)
            np.save(errors_dir / category / f"{sample.name}.npy", errors.astype(np.float32))
        point_labels = sample.point_labels if sample.point_labels is not None else np.zeros(len(sample.points))
        for name, values in variant_scores(sample.points.astype(np.float64), errors).items():
            pooled.setdefault(name, PooledScores()).add(values, point_labels)
            objects.setdefault(name, {})[sample.name] = object_score(values, "top1", OBJECT_FRACTION)
            for fraction in fractions:
                objects.setdefault(f"{name}@{fraction:g}", {})[sample.name] = object_score(values, "top1", fraction)
        labels.append(sample.label)
        stems.append(sample.name)
        print(category, sample.name, f"{objects['raw'][sample.name]:.4f}", flush=True)
    seconds = (time.perf_counter() - started) / len(stems)
    facts = facts_of(root, category)
    pooled.update({name: pooled[name.split("@")[0]] for name in objects if "@" in name})
    return {"category": category, "fit_seconds": fit_seconds, "seconds_per_object": seconds, "variants": variant_results(objects, pooled, stems, labels, facts)}


def main() -> None:
    parser = variant_parser(__doc__)
    parser.add_argument("--pose-search", choices=("sparse", "dense"), default="sparse", help="MVRConfig.pose_search")
    parser.add_argument("--views", default="paper3", help="MVRConfig.views (e.g. paper3, ring6x45)")
    parser.add_argument("--save-errors", type=Path, help="also save each test scan's raw point errors here (.npy)")
    parser.add_argument("--object-fractions", type=float, nargs="*", default=(),
                        help="also score objects by the mean of these top fractions of point scores")
    parser.add_argument("--max-points", type=int, help="MVRConfig.max_points (voxel-downsample larger scans)")
    parser.add_argument("--scan-voxel", type=float, default=0.0, help="MVRConfig.scan_voxel (template voxels)")
    args = parser.parse_args()
    fractions = tuple(args.object_fractions)
    settings = {"config": config(args.seed, args.pose_search, args.views, args.max_points, args.scan_voxel).to_dict(), "smoothing": SMOOTHING,
                "sparse_powers": SPARSE_POWERS, "sparse_smoothing": SPARSE_SMOOTHING, "object_fractions": list(fractions)}
    run_classes(args, lambda category: run_class(args.data, category, args.seed, args.save_errors, args.pose_search,
                                                 fractions, args.views, args.max_points,
                                                 args.scan_voxel), settings)


if __name__ == "__main__":
    main()
