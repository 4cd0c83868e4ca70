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
  twin_...     with --twins N: each scan is also scored as N normal twins (geometry/surface.py:
               normal_twin: its points on the template's planes with its own noise rearranged),
               and its errors are compared with theirs (their mean, e0): twin_diff e - e0,
               twin_diff_s e - smooth128(e0), twin_ratio_s e / smooth128(e0), twin_level
               e / median(e0), twin_shift e - median(e0), twin_top e - top1(e0) (the product's
               twin_rule "top"); twin_obj_diff / twin_obj_ratio: raw
               point scores, the object score top1(e) - top1(e0) / top1(e) / top1(e0). The twins
               are the product's (Placement.place_with_twins, seeded by MVRConfig.seed and each
               point's coordinates); the runs of code 1855652-f65f366 placed them here, seeded per scan,
               and had an ownshape_diff variant (docs/accuracy.md, seventeenth session)

  usage: python benchmarks/mvr_reference_variants.py --data ROOT --out DIR [--classes ...] [--save-errors DIR]
             [--pose-search sparse|dense] [--views SPEC] [--object-fractions F ...] [--set FIELD=VALUE ...]
             [--twins N] [--limit-good N]
  --set sets any further MVRConfig field, e.g. --set scan_voxel=1 --set denoise_k=16 (values as JSON).
Writes DIR/classes/<class>.json (a rerun skips finished classes), DIR/table.md and
DIR/run.json (settings, versions, git hash, machine).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from mvr3d.data.real3d import Real3DAD
from mvr3d.metrics.ranking import PooledScores
from mvr3d.models import MVRConfig, MVRDetector
from mvr3d.models.components.scoring import discount_sparse, robust_standardise
from mvr3d.models.mvr.batch_scoring import reduce_points
from mvr3d.render.poses import views_spec
from mvr3d.scans import object_score
from variant_tables import facts_of, run_classes, variant_parser, variant_results

SMOOTHING = (32, 128)
SPARSE_POWERS = (1.0, 1.5, 2.0)
SPARSE_SMOOTHING = (8, 32)
OBJECT_FRACTION = 0.01  # the product's default (MVRConfig.top_fraction)


def config(seed: int, pose_search: str = "sparse", views: str = "paper3", fields: dict | None = None) -> MVRConfig:
    return MVRConfig(reference="template", view_selection="scan", smoothing_k=0, seed=seed, pose_search=pose_search,
                     views=views_spec(views), **(fields or {}))


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


TWIN_SMOOTHING = 32  # the neighbourhood whose mean offset is the twin's shape (as reference_smoothing)
TWIN_BLUR = 128  # neighbours over which a twin's errors are averaged for the smoothed rules


def twin_errors(detector: MVRDetector, cloud: np.ndarray, twins: int) -> tuple[np.ndarray, np.ndarray]:
    """The scan's raw point errors and the mean errors of its ``twins`` normal twins, placed by
    the product's own :meth:`Placement.place_with_twins` and scored in one batch."""
    placement = dataclasses.replace(detector._placement(), twins=twins)
    if placement.reference_gap is None or placement.denoise_k > 1 or placement.fill_gap is not None:
        raise SystemExit("--twins needs the template reference, no denoise_k and no fill")
    with torch.no_grad():
        scores, _, counts = detector._raw_scores(placement.place_with_twins(cloud))
    pieces = [piece.float().cpu().numpy() for piece in scores.split(list(counts))]
    return pieces[0], np.mean(pieces[1:], axis=0)


def twin_variants(points: np.ndarray, errors: np.ndarray, null: np.ndarray, prefix: str = ""
                  ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Point scores of the twin rules, and the object scores of the object-level ones."""
    _, neighbours = cKDTree(points).query(points, k=min(TWIN_BLUR, len(points)), workers=-1)
    blurred = null[neighbours].mean(axis=1)
    level = float(np.median(null))
    points_out = {"twin_diff": errors - null, "twin_diff_s": errors - blurred,
                  "twin_ratio_s": errors / np.maximum(blurred, 1e-6), "twin_level": errors / max(level, 1e-6),
                  "twin_shift": errors - level}
    top_e, top_0 = (object_score(v, "top1", OBJECT_FRACTION) for v in (errors, null))
    points_out["twin_top"] = errors - top_0  # the object score of twin_obj_diff, pooled points shifted per scan
    objects = {"twin_obj_diff": top_e - top_0, "twin_obj_ratio": top_e / max(top_0, 1e-6)}
    return ({prefix + k: v for k, v in points_out.items()}, {prefix + k: v for k, v in objects.items()})


def scored_cloud(detector: MVRDetector, points: np.ndarray, errors: np.ndarray
                 ) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray | None]:
    """The cloud the detector scored (with ``scan_voxel`` / ``max_points``, the reduced scan) and
    its errors, and each scan point's index in it (None: the scan itself)."""
    reduced, inverse = reduce_points(points, detector.config.max_points, detector.scan_voxel_size(),
                                     detector.config.scan_voxel_point)
    if inverse is None:
        return (points.astype(np.float64), errors), None
    on_grid = np.empty(len(reduced), dtype=errors.dtype)
    on_grid[inverse] = errors  # every point of a voxel carries that voxel's error
    return (reduced.astype(np.float64), on_grid), inverse


def field_setting(text: str) -> tuple[str, object]:
    """FIELD=VALUE -> (FIELD, VALUE parsed as JSON, else the text itself)."""
    name, sep, value = text.partition("=")
    if not sep or name not in {f.name for f in dataclasses.fields(MVRConfig)}:
        raise argparse.ArgumentTypeError(f"{text!r}: expected FIELD=VALUE with an MVRConfig field")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def run_class(root: Path, category: str, seed: int, errors_dir: Path | None = None, pose_search: str = "sparse",
              fractions: tuple[float, ...] = (), views: str = "paper3", fields: dict | None = None,
              twins: int = 0, limit_good: int | None = None) -> dict:
    started = time.perf_counter()
    detector = MVRDetector(config(seed, pose_search, views, fields)).fit(Real3DAD(root, category, "train"), progress=False)
    fit_seconds = time.perf_counter() - started
    pooled: dict[str, PooledScores] = {}
    objects: dict[str, dict[str, float]] = {}
    labels, stems = [], []
    started = time.perf_counter()
    good_seen = 0
    for sample in Real3DAD(root, category, "test"):
        if sample.label == 0:
            good_seen += 1
            if limit_good is not None and good_seen > limit_good:
                continue
        point_labels = sample.point_labels if sample.point_labels is not None else np.zeros(len(sample.points))
        if twins:
            cloud, inverse = detector._reduced(sample.points)
            errors, null = twin_errors(detector, cloud, twins)
            scored = (cloud.astype(np.float64), errors)
        else:
            errors = detector.score(sample.points).point_scores
            scored, inverse = scored_cloud(detector, sample.points, errors)
        if errors_dir is not None:  # kept to try further scoring rules without rendering again
            (errors_dir / category).mkdir(parents=True, exist_ok=True)
            np.save(errors_dir / category / f"{sample.name}.npy", errors.astype(np.float32))
        variants = variant_scores(*scored)
        object_only: dict[str, float] = {}
        if twins:
            twin_points, object_only = twin_variants(scored[0], errors, null)
            variants.update(twin_points)
            ones = torch.ones(len(errors), dtype=torch.float64)  # the discount depends on the points alone
            discount = discount_sparse(torch.from_numpy(scored[0]), ones, 1.5).numpy()
            twin_points, discounted_objects = twin_variants(scored[0], variants["sparse1.5"], null * discount,
                                                            "sparse1.5_")
            variants.update(twin_points)
            object_only.update(discounted_objects)
        for name, values in variants.items():
            # As the product: object scores from the scored cloud, every point its voxel's score.
            pooled.setdefault(name, PooledScores()).add(values if inverse is None else values[inverse], point_labels)
            objects.setdefault(name, {})[sample.name] = object_score(values, "top1", OBJECT_FRACTION)
            for fraction in fractions:
                objects.setdefault(f"{name}@{fraction:g}", {})[sample.name] = object_score(values, "top1", fraction)
        for name, value in object_only.items():
            objects.setdefault(name, {})[sample.name] = value
        labels.append(sample.label)
        stems.append(sample.name)
        # Every variant's object score, one JSON line a scan: a run cut short still tells
        # its O-ROC and nuisance check over the scans it scored (partial_table.py reads them).
        print("scan", json.dumps({"category": category, "scan": sample.name, "label": int(sample.label),
                                  "objects": {n: round(v[sample.name], 6) for n, v in objects.items()}}), flush=True)
    seconds = (time.perf_counter() - started) / len(stems)
    facts = facts_of(root, category)
    pooled.update({name: pooled[name.split("@")[0]] for name in objects if "@" in name})
    pooled.update({name: pooled["raw"] for name in objects if name.startswith("twin_obj")})
    pooled.update({name: pooled["sparse1.5"] for name in objects if name.startswith("sparse1.5_twin_obj")})
    return {"category": category, "fit_seconds": fit_seconds, "seconds_per_object": seconds, "variants": variant_results(objects, pooled, stems, labels, facts)}


def main() -> None:
    parser = variant_parser(__doc__)
    parser.add_argument("--pose-search", choices=("sparse", "dense"), default="sparse", help="MVRConfig.pose_search")
    parser.add_argument("--views", default="paper3", help="MVRConfig.views (e.g. paper3, ring6x45)")
    parser.add_argument("--save-errors", type=Path, help="also save each test scan's raw point errors here (.npy)")
    parser.add_argument("--object-fractions", type=float, nargs="*", default=(),
                        help="also score objects by the mean of these top fractions of point scores")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", type=field_setting,
                        help="any further MVRConfig field (value as JSON), e.g. scan_voxel=1")
    parser.add_argument("--twins", type=int, default=0, help="score each scan against N normal twins too (twin_ rules)")
    parser.add_argument("--limit-good", type=int, help="score only the first N good test scans of a class")
    args = parser.parse_args()
    fields = dict(args.set)
    fractions = tuple(args.object_fractions)
    settings = {"config": config(args.seed, args.pose_search, args.views, fields).to_dict(), "smoothing": SMOOTHING,
                "sparse_powers": SPARSE_POWERS, "sparse_smoothing": SPARSE_SMOOTHING, "object_fractions": list(fractions),
                "twins": args.twins, "twin_smoothing": TWIN_SMOOTHING, "twin_blur": TWIN_BLUR, "limit_good": args.limit_good}
    run_classes(args, lambda category: run_class(args.data, category, args.seed, args.save_errors, args.pose_search,
                                                 fractions, args.views, fields, args.twins, args.limit_good),
                settings)


if __name__ == "__main__":
    main()
