"""Where the template method's scoring time goes, stage by stage, and what it scored.

Per class: fit ``template``, score every test scan in one ``score_many`` call (as the
throughput benchmark's fastest batch does) once to warm up, once untimed-by-stage for the
wall time, then once with a synchronised timer around each stage below; O-ROC / P-ROC of
the scored batch and its object scores are kept, so two code versions run over the same
data can be compared for speed and for results.

Stages (nested ones are part of their parent):
  register            TemplateAligner.pose_many
    coarse search       pose search over all start poses on the coarse templates
    refine              fine ICP of the best poses
  distance            SurfaceReference.signed_distance (fused reference)
  smoothing           smoothed_offsets (smoothed_offset scan by scan in older code)
    neighbourhoods      the k nearest scan points of each anchor
  density             thinned_to_spacing (smoothing sources at one surface spacing)
    areas               local_areas (every point's 16 nearest points)
    draws               point_uniforms (host hash of the coordinates)
  edges               SurfaceReference.beyond_edges (coverage rule)
  location            LocationStats.standardise
  deviations          TemplateDetector._deviations (all of the above but location)
  index builds        NeighbourIndex construction (inside the stages above)
  grid queries        CellGrid.nearest (inside the stages above)
  brute-force queries NeighbourIndex._brute_force (inside the stages above)

  usage: python benchmarks/template_profile.py --data ROOT --out FILE.json [--classes ...]
         [--device cuda] [--smoothing-grid-max K] [--grid-level-factor F] [--grid-level-share S]
"""

from __future__ import annotations

import functools
import json
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import mvr3d.geometry.density as density
import mvr3d.geometry.surface as surface
from common import class_run_parser, machine, sync
from mvr3d.baselines import template as template_module
from mvr3d.data.real3d import Real3DAD, list_categories
from mvr3d.geometry import neighbours
from mvr3d.geometry.aligner import TemplateAligner
from mvr3d.metrics.ranking import PooledScores, auroc
from mvr3d.models.components.location_stats import LocationStats
from mvr3d.models.registry import create_detector
from mvr3d.utils.atomic import atomic_write_text
from mvr3d.utils.provenance import provenance

STAGES = {
    "register": (TemplateAligner, ("pose_joined", "pose_many")),
    "coarse search": (TemplateAligner, "_coarse_search"),
    "refine": (TemplateAligner, "_refine"),
    "distance": (surface.SurfaceReference, "signed_distance"),
    "smoothing": (template_module, ("smoothed_offsets", "smoothed_offset")),
    "neighbourhoods": (surface, "neighbourhood_offset"),
    "density": (template_module, "thinned_to_spacing"),
    "areas": (density, "local_areas"),
    "draws": (density, "point_uniforms"),
    "edges": (surface.SurfaceReference, "beyond_edges"),
    "location": (LocationStats, "standardise"),
    "deviations": (template_module.TemplateDetector, "_deviations"),
    "index builds": (neighbours.NeighbourIndex, "__init__"),
    "grid queries": (neighbours.CellGrid, "nearest"),
    "brute-force queries": (neighbours.NeighbourIndex, "_brute_force"),
}


class StageTimer:
    """Wraps each stage's function with a synchronised timer while active."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._saved: list[tuple[object, str, Callable]] = []

    def __enter__(self) -> StageTimer:
        for name, (owner, attributes) in STAGES.items():
            # The first of several names that this code version has (older code: the last).
            names = [attributes] if isinstance(attributes, str) else attributes
            attribute = next((a for a in names if hasattr(owner, a)), None)
            if attribute is None:  # a stage this code version does not have
                continue
            original = getattr(owner, attribute)
            self._saved.append((owner, attribute, original))
            setattr(owner, attribute, self._timed(name, original))
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, attribute, original in reversed(self._saved):
            setattr(owner, attribute, original)

    def _timed(self, name: str, function: Callable) -> Callable:
        @functools.wraps(function)
        def timed(*args: object, **kwargs: object) -> object:
            sync(self.device)
            started = time.perf_counter()
            result = function(*args, **kwargs)
            sync(self.device)
            self.seconds[name] += time.perf_counter() - started
            self.calls[name] += 1
            return result
        return timed


def smoothing_from_grids(most: int) -> None:
    """Smoothing neighbourhoods of up to ``most`` points from cell grids (the code's own
    limit is surface.GRID_NEIGHBOURS; larger ones go to brute force)."""
    surface.GRID_NEIGHBOURS = most


def profile_class(root: Path, category: str, device: str) -> dict:
    train, test = Real3DAD(root, category, "train"), Real3DAD(root, category, "test")
    detector = create_detector("template", device=device).fit([s.points for s in train], progress=False)
    samples = [test[i] for i in range(len(test))]
    clouds = [s.points for s in samples]
    detector.score_many(clouds)  # warm-up: kernels, allocator, lazily built grids
    sync(device)
    started = time.perf_counter()
    scores = detector.score_many(clouds)
    sync(device)
    wall = time.perf_counter() - started
    with StageTimer(device) as timer:
        detector.score_many(clouds)
    pooled = PooledScores()
    for sample, score in zip(samples, scores, strict=True):
        pooled.add(score.point_scores, sample.point_labels)
    labels = np.array([s.label for s in samples])
    objects = np.array([s.object_score for s in scores])
    per_scan = {name: 1e3 * seconds / len(clouds) for name, seconds in timer.seconds.items()}
    row = {"class": category, "scans": len(clouds), "wall_ms": 1e3 * wall / len(clouds),
           "objects_per_s": len(clouds) / wall, "stage_ms": per_scan, "calls": dict(timer.calls),
           "o_roc": auroc(objects, labels), "p_roc": pooled.auroc(), "object_scores": objects.tolist()}
    print({k: v for k, v in row.items() if k != "object_scores"}, flush=True)
    return row


def table(rows: list[dict]) -> str:
    stages = list(STAGES)
    head = ["class", "scans", "objects/s (no reading)", "ms/scan", *[f"{s} ms" for s in stages], "O-ROC", "P-ROC"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["class"], str(r["scans"]), f"{r['objects_per_s']:.2f}", f"{r['wall_ms']:.1f}",
                 *[f"{r['stage_ms'].get(s, 0.0):.1f}" for s in stages], f"{100 * r['o_roc']:.1f}", f"{100 * r['p_roc']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = class_run_parser(__doc__, "JSON file of the rows (a .md table beside it)")
    parser.add_argument("--smoothing-grid-max", type=int,
                        help="smoothing neighbourhoods up to this size from cell grids (default: the code's own limit)")
    parser.add_argument("--grid-level-factor", type=int, help="neighbours.GRID_LEVEL_FACTOR for this run")
    parser.add_argument("--grid-level-share", type=float, help="neighbours.GRID_LEVEL_SHARE for this run")
    args = parser.parse_args()
    if args.grid_level_factor is not None:
        neighbours.GRID_LEVEL_FACTOR = args.grid_level_factor
    if args.grid_level_share is not None:
        neighbours.GRID_LEVEL_SHARE = args.grid_level_share
    if args.smoothing_grid_max is not None:
        smoothing_from_grids(args.smoothing_grid_max)
    torch.manual_seed(0)
    rows = [profile_class(args.data, category, args.device)
            for category in (args.classes or list_categories(args.data))]
    text = (f"Template scoring stages on {machine(args.device)}, smoothing grids up to {getattr(surface, 'GRID_NEIGHBOURS', 32)} points, "
            f"grid levels x{neighbours.GRID_LEVEL_FACTOR} up to {neighbours.GRID_LEVEL_SHARE} of the reference; ms per scan, all "
            f"test scans of a class in one score_many call.\n\n{table(rows)}\n")
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps({"rows": rows, "args": vars(args) | {"data": str(args.data), "out": str(args.out)},
                                    "provenance": provenance()}, indent=1, default=str))
    atomic_write_text(args.out.with_suffix(".md"), text)


if __name__ == "__main__":
    main()
