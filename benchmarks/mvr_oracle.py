"""How far could any MVR student go? Reconstruction error against an oracle reference.

    python benchmarks/mvr_oracle.py --data ROOT --shapes DIR --classes angle_block cycloidal

MVR scores a point by how far the frozen teacher's tokens of the scan's views lie from the
student's reconstruction of them. The best a student trained on normal scans can do is to
output the tokens a *normal* scan of the same part, from the same side, would give; it
cannot know the scanner's noise draw or the sampling of the scan it is shown. This script
hands the scorer that reference directly, from the generator itself:

- every test scan of a ``make-benchmark`` class is moved back to the mesh frame with its
  recorded pose (perfect registration) and turned so that its recorded scanner direction
  faces the views (perfect view selection);
- ``--draws`` defect-free counterparts are drawn with the builder's own scanner model from
  the same direction, at the same point count and noise level (new sampling and noise);
- the "student output" is the mean of the counterparts' teacher tokens (per view, token and
  layer group), and everything after that (map blur, back-projection, unseen-point fill,
  smoothing, object score) is the detector's own code with the chosen MVR settings.

So the figures are what MVR reaches with a student that reconstructs normal tokens exactly
(up to the mean over ``--draws`` noise draws), free of every registration and
view-selection error. If they stay below a target, no student of this teacher, renderer
and view set reaches that target on this data.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import cKDTree

from common import machine, markdown_table
from mvr3d.data.presets import BenchmarkPreset
from mvr3d.data.real3d import Real3DAD
from mvr3d.data.scanner import finish_scan, load_mesh, scan_surface
from mvr3d.metrics import PooledScores, auroc
from mvr3d.models import MVRConfig, MVRDetector
from mvr3d.models.mvr import batch_scoring
from mvr3d.models.mvr.placement import Placed
from mvr3d.models.mvr.presets import preset_fields
from mvr3d.models.mvr.sides import facing_rotation, turn_to_views
from mvr3d.models.mvr.student import fuse_groups
from mvr3d.render import render_batch, to_rgb
from mvr3d.scans import object_score
from mvr3d.utils.atomic import atomic_write_text
from mvr3d.utils.provenance import provenance

REFERENCES = {
    "counterpart": "defect-free scans drawn from each test scan's own direction, point count and noise level "
                   "(the oracle); poses and view directions are the generator's (perfect registration and "
                   "view selection).",
    "template-true": "the class's templates cut to each test scan's footprint; poses and view directions are "
                     "the generator's.",
    "template-registered": "the template the detector registers the scan to, cut to the scan's footprint; "
                           "pose and side from the detector's own registration and side finding.",
}


def to_mesh_frame(points: np.ndarray, rotation: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Undo the builder's pose ``p @ R.T + t``."""
    return (points.astype(np.float64) - shift) @ rotation


def counterparts(mesh, entry: dict, preset: BenchmarkPreset, draws: int, seed: int) -> list[np.ndarray]:
    """Defect-free scans from the scan's direction, point count and noise level (mesh frame)."""
    view = np.asarray(entry["view"], dtype=np.float64)
    same_noise = dataclasses.replace(preset, noise=(entry["noise"], entry["noise"]))
    size = float(np.linalg.norm(mesh.extents))
    clouds = []
    for draw in range(draws):
        rng = np.random.default_rng([seed, draw])
        seen = scan_surface(mesh, view, entry["points"], "good", same_noise, rng)
        scan = finish_scan(seen.points, None, view, size, same_noise, rng)
        clouds.append(to_mesh_frame(scan.points, scan.rotation, scan.translation))
    return clouds


def crop_to(reference: np.ndarray, scan: np.ndarray, gap: float) -> np.ndarray:
    """The reference points within ``gap`` median scan spacings of the scan: the part of a
    complete template that the partial scan covers."""
    tree = cKDTree(scan)
    sample = scan[np.linspace(0, len(scan) - 1, min(len(scan), 4096)).astype(int)]
    spacing = float(np.median(tree.query(sample, k=2)[0][:, 1]))
    return reference[tree.query(reference, k=1)[0] <= gap * spacing]


@dataclass
class Case:
    """One test scan placed for drawing, and the normal clouds its reference is made of."""

    cloud: torch.Tensor
    normals: list[torch.Tensor]
    centre: np.ndarray


class Oracle:
    """Teacher tokens of placed clouds, and anomaly maps against a given reference."""

    def __init__(self, detector: MVRDetector) -> None:
        self.detector = detector
        self.groups = detector.net.student.config.groups
        self.reference: list[torch.Tensor] | None = None

    @torch.no_grad()
    def tokens(self, images: torch.Tensor) -> list[torch.Tensor]:
        return [g.float() for g in fuse_groups(self.detector.net.teacher_layers(images), self.groups)]

    def reference_tokens(self, clouds: list[torch.Tensor], centre: np.ndarray) -> list[torch.Tensor]:
        cfg = self.detector.config
        sums = None
        for cloud in clouds:
            batch = render_batch([cloud], self.detector._poses(), cfg.render, centres=[centre],
                                 radius=self.detector.radius_)
            tokens = self.tokens(to_rgb(batch.images))
            sums = tokens if sums is None else [s + t for s, t in zip(sums, tokens, strict=True)]
        return [s / len(clouds) for s in sums]

    def maps(self, images: torch.Tensor, _: torch.Tensor | None = None) -> torch.Tensor:
        tokens = self.tokens(images)
        distance = torch.stack([1 - F.cosine_similarity(t, r, dim=-1)
                                for t, r in zip(tokens, self.reference, strict=True)]).mean(dim=0)
        return distance.reshape(images.shape[0], *self.detector.net.token_grid(images))

    def point_scores(self, case: Case, draws: int) -> np.ndarray:
        self.reference = self.reference_tokens(case.normals[:draws], case.centre)
        scores, _, _ = batch_scoring.raw_scores([Placed(case.cloud, case.centre)], self.detector._poses(),
                                                self.detector.config, self.detector.radius_, self.maps,
                                                lambda function, items: [function(*item) for item in items])
        return scores.float().numpy()


def turned(points: np.ndarray, centre: np.ndarray, turn: torch.Tensor) -> torch.Tensor:
    return turn_to_views(torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)), centre, turn)


class Cases:
    """Builds each test scan's :class:`Case` for one kind of reference."""

    def __init__(self, kind: str, detector: MVRDetector, templates: list[np.ndarray], mesh, preset: BenchmarkPreset,
                 args: argparse.Namespace) -> None:
        self.kind, self.detector, self.templates, self.mesh, self.preset, self.args = (
            kind, detector, templates, mesh, preset, args)

    def case(self, index: int, points: np.ndarray, facts: dict) -> Case:
        if self.kind == "template-registered":
            return self._registered(points)
        view = np.asarray(facts["view"], dtype=np.float64)
        turn = facing_rotation(torch.as_tensor(view))
        centre = self.detector.template_centres_[0]
        scan = to_mesh_frame(points, np.asarray(facts["rotation"]), np.asarray(facts["translation"]))
        if self.kind == "counterpart":
            normals = counterparts(self.mesh, facts, self.preset, max(self.args.report), self.args.seed * 1000 + index)
        else:  # template-true: the templates (mesh frame here) cut to the scan's footprint
            normals = [crop_to(t, scan, self.args.gap) for t in self.templates]
        return Case(turned(scan, centre, turn), [turned(n, centre, turn) for n in normals], centre)

    def _registered(self, points: np.ndarray) -> Case:
        """The detector's own registration and side finding; its template cut to the scan."""
        detector = self.detector
        template, moved = detector.aligner_.to_template_frame(points.astype(np.float64))
        placed = detector._placement().in_template(moved, template)
        _, nearest = detector.aligner_.match(template, torch.from_numpy(moved))
        turn = facing_rotation(detector.sides_.direction(template, nearest))
        centre = detector.template_centres_[template]
        source = self.templates[template]
        if self.args.downsampled:  # the aligner's voxel-downsampled template instead of the file's points
            source = (detector.aligner_.references[template] + torch.from_numpy(detector.aligner_.offsets_[template])).numpy()
        normal = crop_to(source, moved, self.args.gap)
        return Case(placed.cloud, [turned(normal, centre, turn)], centre)


def class_result(root: Path, shapes: Path, category: str, args: argparse.Namespace) -> dict:
    meta = json.loads((root / "meta.json").read_text())
    entry = meta["classes"][category]
    preset = BenchmarkPreset(**meta["settings"])
    mesh = load_mesh(shapes / entry["source"], entry["size_mm"])
    templates = [np.asarray(s.points, dtype=np.float64) for s in Real3DAD(root, category, "train")]
    registered = args.reference == "template-registered"
    config = MVRConfig.from_dict({**MVRConfig().to_dict(), **preset_fields(args.preset), "align": registered,
                                  "view_selection": "scan", "smoothing_k": args.smoothing_k, "seed": args.seed,
                                  "iterations": 1, "augment_rotations": 0, "train_directions": 1})
    # One iteration: the student is never used; fit() builds the teacher, templates and sides.
    detector = MVRDetector(config, device="cpu").fit(templates, progress=False)
    oracle = Oracle(detector)
    cases = Cases(args.reference, detector, templates, mesh, preset, args)
    test = Real3DAD(root, category, "test")
    report = args.report if args.reference == "counterpart" else [min(len(templates), max(args.report))]
    if args.reference == "template-registered":
        report = [1]
    by_draws: dict[int, dict] = {d: {"objects": {}, "pooled": PooledScores()} for d in report}
    labels = {}
    for index in range(min(len(test), args.scans or len(test))):
        sample = test[index]
        case = cases.case(index, sample.points, entry["scans"][sample.name])
        labels[sample.name] = sample.label
        for draws in report:
            scores = oracle.point_scores(case, draws)
            by_draws[draws]["objects"][sample.name] = object_score(scores, config.object_score, config.top_fraction)
            by_draws[draws]["pooled"].add(scores, sample.point_labels)
        print(f"{category} {sample.name}: " + ", ".join(
            f"{d} references {by_draws[d]['objects'][sample.name]:.4f}" for d in report), flush=True)
    names = sorted(labels)
    out = {}
    for draws, found in by_draws.items():
        objects = np.array([found["objects"][n] for n in names])
        out[draws] = {"o_roc": 100 * auroc(objects, np.array([labels[n] for n in names])),
                      "p_roc": 100 * found["pooled"].auroc(), "object_scores": dict(zip(names, objects.tolist(), strict=True))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a `mvr3d make-benchmark` root")
    parser.add_argument("--shapes", type=Path, required=True, help="the meshes it was built from")
    parser.add_argument("--classes", nargs="+", required=True)
    parser.add_argument("--report", type=int, nargs="+", default=[1, 4],
                        help="numbers of counterpart draws averaged into the reference, one result each")
    parser.add_argument("--reference", default="counterpart",
                        choices=("counterpart", "template-true", "template-registered"),
                        help="counterpart: defect-free scans drawn from the mesh (the oracle); template-true: the "
                             "templates cut to the scan's footprint, true pose; template-registered: the "
                             "detector's own registration and side finding, its template cut to the scan")
    parser.add_argument("--gap", type=float, default=3.0, help="template cut: median scan spacings")
    parser.add_argument("--downsampled", action="store_true", help="template-registered: cut the aligner's "
                        "voxel-downsampled template, not the template file's points")
    parser.add_argument("--preset", default="default", help="MVR preset: default (full size) or cpu")
    parser.add_argument("--smoothing-k", type=int, default=0, help="MVR's smoothing_k (its default: 0)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the counterparts' draws")
    parser.add_argument("--scans", type=int, help="only the first SCANS test scans of each class (a quick look)")
    parser.add_argument("--out", type=Path, required=True, help="markdown table to write")
    parser.add_argument("--raw", type=Path, help="JSON of every object score and the table's figures")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    results = {c: class_result(args.data, args.shapes, c, args) for c in args.classes}
    rows = []
    for draws in results[args.classes[0]]:
        cells = [f"{results[c][draws]['o_roc']:.1f}/{results[c][draws]['p_roc']:.1f}" for c in args.classes]
        mean_o = np.mean([results[c][draws]["o_roc"] for c in args.classes])
        mean_p = np.mean([results[c][draws]["p_roc"] for c in args.classes])
        rows.append([f"{args.reference}, mean of {draws}", *cells, f"{mean_o:.1f}/{mean_p:.1f}"])
    record = provenance()
    seed = json.loads((args.data / "meta.json").read_text()).get("seed")
    text = "\n".join([
        f"# MVR against a {args.reference} reference (benchmarks/mvr_oracle.py)", "",
        f"Data: {args.data} (benchmark seed {seed}); O-ROC/P-ROC in percent. The student's output is",
        f"replaced by the mean teacher tokens of: {REFERENCES[args.reference]}",
        f"MVR settings: preset {args.preset}, views turned to the scanned side, smoothing_k {args.smoothing_k}.", "",
        markdown_table(["reference", *args.classes, "mean"], rows),
        f"{machine()}; {time.perf_counter() - started:.0f} s; git {record.get('git')}; torch {torch.__version__}.",
    ]) + "\n"
    atomic_write_text(args.out, text)
    if args.raw is not None:
        args.raw.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.raw, json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                "provenance": record, "results": results}, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
