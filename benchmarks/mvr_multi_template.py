"""MVR with the template reference, compared with every template instead of the best one.

The template reference's error depends on which template a scan is compared with, even when
both poses are right (docs/accuracy.md, registration study: a sink scores 0.663 against one
template and 0.189 against another). A defect differs from every template; a difference
that comes from one template (its own noise, holes or cut) does not. This script registers
each test scan to each template separately (one single-template aligner per template, same
search settings), scores it against each, and combines the per-point errors:

  best       the template with the smallest median deviation (about what the product does)
  min        per point, the smallest error over all templates
  min2       per point, the smallest over the two best-registered templates
  mean, median  per point, over all templates
  mean2      per point, the mean over the two best-registered templates

Each rule also ``_d``: times the product's sparse discount (power 1.5, the reference preset).
Object score: the product's (mean of the top 1 %).

  usage: python benchmarks/mvr_multi_template.py --data ROOT --out DIR [--classes ...] [--pose-search sparse|dense]
Writes DIR/classes/<class>.json (a rerun skips finished classes), DIR/table.md and DIR/run.json.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from mvr3d.data.real3d import Real3DAD
from mvr3d.geometry import TemplateAligner
from mvr3d.metrics.ranking import PooledScores
from mvr3d.models import MVRConfig, MVRDetector
from mvr3d.models.components.scoring import discount_sparse
from mvr3d.scans import object_score
from variant_tables import facts_of, run_classes, variant_parser, variant_results

DISCOUNT = 1.5
TOP_FRACTION = 0.01


def config(seed: int, pose_search: str) -> MVRConfig:
    return MVRConfig(reference="template", view_selection="scan", smoothing_k=0, seed=seed, pose_search=pose_search)


def single_aligners(aligner: TemplateAligner) -> list[TemplateAligner]:
    """One aligner per template, with the detector aligner's settings and voxel size."""
    return [TemplateAligner(device=aligner.device, **aligner.params()).set_templates([centred], [offset], aligner.voxel_)
            for centred, offset in zip(aligner.centred_, aligner.offsets_, strict=True)]


def errors_per_template(detector: MVRDetector, singles: list[TemplateAligner], points: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
    """(T, N) raw point errors against each template and (T,) median deviations."""
    placement = detector._placement()
    placed = []
    for j, single in enumerate(singles):
        _, moved = single.to_template_frame(points.astype(np.float64))
        placed.append(placement.in_template(moved, j))
    scores, _, counts = detector._raw_scores(placed)
    errors = np.stack([piece.cpu().numpy() for piece in scores.split(list(counts))])
    deviations = np.array([float(p.deviation.median()) for p in placed])
    return errors, deviations


def combined(errors: np.ndarray, deviations: np.ndarray) -> dict[str, np.ndarray]:
    order = np.argsort(deviations, kind="stable")
    two = errors[order[:2]]
    return {"best": errors[order[0]], "min": errors.min(axis=0), "min2": two.min(axis=0),
            "mean": errors.mean(axis=0), "median": np.median(errors, axis=0), "mean2": two.mean(axis=0)}


def run_class(root: Path, category: str, seed: int, pose_search: str) -> dict:
    started = time.perf_counter()
    detector = MVRDetector(config(seed, pose_search)).fit(Real3DAD(root, category, "train"), progress=False)
    singles = single_aligners(detector.aligner_)
    fit_seconds = time.perf_counter() - started
    pooled: dict[str, PooledScores] = {}
    objects: dict[str, dict[str, float]] = {}
    labels, stems, chosen = [], [], {}
    started = time.perf_counter()
    for sample in Real3DAD(root, category, "test"):
        with torch.no_grad():
            errors, deviations = errors_per_template(detector, singles, sample.points)
        chosen[sample.name] = deviations.tolist()
        point_labels = sample.point_labels if sample.point_labels is not None else np.zeros(len(sample.points))
        cloud = torch.from_numpy(sample.points.astype(np.float64))
        for name, values in combined(errors, deviations).items():
            discounted = discount_sparse(cloud, torch.from_numpy(values.astype(np.float64)), DISCOUNT).numpy()
            for key, scores in ((name, values), (f"{name}_d", discounted)):
                pooled.setdefault(key, PooledScores()).add(scores, point_labels)
                objects.setdefault(key, {})[sample.name] = object_score(scores, "top1", TOP_FRACTION)
        labels.append(sample.label)
        stems.append(sample.name)
        print(category, sample.name, f"best {objects['best_d'][sample.name]:.4f} min {objects['min_d'][sample.name]:.4f}",
              flush=True)
    seconds = (time.perf_counter() - started) / len(stems)
    variants = variant_results(objects, pooled, stems, labels, facts_of(root, category))
    return {"category": category, "fit_seconds": fit_seconds, "seconds_per_object": seconds,
            "median_deviations": chosen, "variants": variants}


def main() -> None:
    parser = variant_parser(__doc__)
    parser.add_argument("--pose-search", choices=("sparse", "dense"), default="sparse", help="MVRConfig.pose_search")
    args = parser.parse_args()
    settings = {"config": config(args.seed, args.pose_search).to_dict(), "discount": DISCOUNT}
    run_classes(args, lambda category: run_class(args.data, category, args.seed, args.pose_search), settings)


if __name__ == "__main__":
    main()
