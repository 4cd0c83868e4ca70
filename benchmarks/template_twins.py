"""Object-score variants of the ``template`` method against normal twins of each scan.

Each test scan is registered once (the product's pose search and scoring, baselines/template.py),
then also scored as normal twins (geometry/surface.py: ``normal_twin``: its own points moved onto
a surface's local planes, then off them by the noise of a random neighbour), so the table
compares scoring rules on the same poses. Twins:
  fused       the scan on the fused reference's planes, scored against the fused reference:
              the scan's sampling and noise on a part that matches the reference exactly
  loo         for each template k, the scan on template k's planes, scored against the fusion
              of the other templates (their own open edges, no shared-coverage mask): the
              scan's sampling and noise on a part the reference was not fused from, so the
              misfit of a fusion of noisy scans where the scan looked is in it
Variants (object scores; P-ROC is the product's point scores for every one):
  product           top 1 % of the scan's point scores (the method as it stands)
  minus_fused       product - the fused twin's object score
  minus_loo         product - the mean of the loo twins' object scores
  ratio_loo         product / that mean
  minus_loo_fused   product - (mean loo - fused): the misfit part of the loo twins alone
  minus_loo1/2      product - the first loo twin's / the mean of the first two's (cheaper)
  minus_loo_median  product - the median of the loo twins' object scores
Twins are scored over the points the product counts for the scan (its coverage masks).
With --blend the loo twins give way to the product's blend twins (``TemplateDetector(null_twins=n,
twin_mode="blend")``, baselines/template.py, "Twins"): the scan drawn on the fused reference's
planes and moved 1/sqrt(n-1) of the way to template k's planes (the same noise draw), scored
against the fused reference as the scan is. With n templates of independent errors, a template
less the fusion of all has (n-1)/n of a template's error variance and the fusion 1/n of it, so
the twin carries a misfit of the fused reference's expected size. (Until 2026-12-08 this script
drew them itself, with ``--blend A`` for the fraction; the product gives the same scores.)
  minus_blend       product - the mean of the blend twins' object scores (the product with twins)

  usage: python benchmarks/template_twins.py --data ROOT --out DIR [--classes ...] [--seed S] [--blend]
Writes DIR/classes/<class>.json (a rerun skips finished classes), DIR/table.md and DIR/run.json.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from mvr3d.baselines.template import TemplateDetector
from mvr3d.data.real3d import Real3DAD
from mvr3d.geometry.joined import join_clouds, move_clouds
from mvr3d.geometry.surface import FUSED_VOXEL, anchor_points, fuse_placed, normal_twin
from mvr3d.geometry.voxels import bounding_diagonal
from mvr3d.metrics.ranking import PooledScores
from mvr3d.scans import load_clouds, object_score
from variant_tables import facts_of, run_classes, variant_parser, variant_results

TWIN_SMOOTHING = 32


def twin_object(detector: TemplateDetector, reference, points: torch.Tensor, anchors, counted: np.ndarray,
                keys: np.ndarray, shared: torch.Tensor | None = None) -> float:
    """The object score of ``points`` (a twin in the fused frame, in the scan's point order)
    against ``reference``, over the points the product counts for the scan (``counted``) and
    ``reference`` covers, thinned by the draw of the scan as read (``keys``) as the product's
    twins are. The product's shared-coverage mask indexes the fused reference's samples, so it
    comes in through ``counted``."""
    deviations, floors, _, covered = detector._offsets(reference, points, [len(points)], [anchors], shared=shared,
                                                      keys=[keys])
    values = detector._standardised(deviations, floors).float().cpu().numpy()
    inside = covered[0].cpu().numpy() & counted
    return object_score(values[inside] if inside.any() else values, "top1", detector.top_fraction)


def scan_objects(detector: TemplateDetector, placed: list[np.ndarray], others: list, points: np.ndarray,
                 seed: int, blend: bool) -> tuple[np.ndarray, dict[str, float]]:
    """The product's point scores of one scan and every variant's object score (``blend``: the
    product's blend twins instead of the loo ones)."""
    joined, sizes = join_clouds([points], detector.device)
    anchors = anchor_points(points, detector.anchor_stride, detector.seed)
    pose = detector.aligner_.pose_joined(joined, sizes)[0]
    rotation, shift = detector._to_reference(pose)
    moved = move_clouds(joined, sizes, [rotation], [shift])
    deviations, floors, _, covered = detector._offsets(detector.reference_, moved, sizes, [anchors],
                                                      shared=detector.shared_, keys=[points])
    values = detector._standardised(deviations, floors).float().cpu().numpy()
    inside = covered[0].cpu().numpy()
    product = object_score(values[inside] if inside.any() else values, "top1", detector.top_fraction)
    if blend:
        null = detector._twin_objects([points], moved, sizes, [anchors], covered)[0]
        return values, {"product": product, "minus_blend": product - null, "twin_blend": null}
    fused_twin = normal_twin(moved, detector.reference_.points.to(moved.device), TWIN_SMOOTHING, seed)
    fused = twin_object(detector, detector.reference_, fused_twin, anchors, inside, points)
    loo = [twin_object(detector, reference, normal_twin(moved, torch.from_numpy(template).to(moved.device),
                                                        TWIN_SMOOTHING, seed + k), anchors, inside, points)
           for k, (template, reference) in enumerate(zip(placed, others, strict=True))]
    mean_loo = float(np.mean(loo))
    objects = {"product": product, "minus_fused": product - fused, "minus_loo": product - mean_loo,
               "ratio_loo": product / max(mean_loo, 1e-6), "minus_loo_fused": product - (mean_loo - fused),
               "minus_loo1": product - loo[0], "minus_loo2": product - float(np.mean(loo[:2])),
               "minus_loo_median": product - float(np.median(loo)),
               "twin_fused": fused, "twin_loo": mean_loo, **{f"twin_loo{k}": value for k, value in enumerate(loo)}}
    return values, objects


def run_class(root: Path, category: str, seed: int, blend: bool) -> dict:
    train, test = Real3DAD(root, category, "train"), Real3DAD(root, category, "test")
    clouds = load_clouds(train)
    detector = TemplateDetector(seed=seed, null_twins=len(clouds) if blend else 0).fit(clouds, progress=False)
    placed = [detector.reference_.from_template(j, np.asarray(c, dtype=np.float64)) for j, c in enumerate(clouds)]
    voxel = FUSED_VOXEL * bounding_diagonal(np.asarray(clouds[0]))
    others = [] if blend else [fuse_placed([p for j, p in enumerate(placed) if j != k], voxel, device=detector.device)
                               for k in range(len(placed))]
    pooled: dict[str, PooledScores] = {}
    objects: dict[str, dict[str, float]] = {}
    labels, stems = [], []
    started = time.perf_counter()
    for sample in test:
        values, by_variant = scan_objects(detector, placed, others, np.asarray(sample.points, dtype=np.float64), seed,
                                          blend)
        point_labels = sample.point_labels if sample.point_labels is not None else np.zeros(len(sample.points))
        for name, value in by_variant.items():
            pooled.setdefault(name, PooledScores()).add(values, point_labels)
            objects.setdefault(name, {})[sample.name] = value
        labels.append(sample.label)
        stems.append(sample.name)
        print("scan", sample.name, {n: round(float(v), 4) for n, v in by_variant.items()}, flush=True)
    seconds = (time.perf_counter() - started) / len(test)
    return {"category": category, "seconds_per_object": seconds,
            "variants": variant_results(objects, pooled, stems, labels, facts_of(root, category))}


def main() -> None:
    parser = variant_parser(__doc__)
    parser.add_argument("--blend", action="store_true", help="the product's blend twins instead of the loo ones")
    args = parser.parse_args()
    run_classes(args, lambda category: run_class(args.data, category, args.seed, args.blend),
                {"script": "template_twins.py", "twin_smoothing": TWIN_SMOOTHING, "seed": args.seed,
                 "blend": args.blend})


if __name__ == "__main__":
    main()
