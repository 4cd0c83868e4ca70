"""Dump the template method's per-point deviations of every test scan, for scoring studies.

Fits the default ``template`` detector per class and saves, per test scan, the scan's points
in the fused reference frame, their signed offsets to the reference's local planes, the
smoothed deviations the method standardises, and the ground-truth labels; with meta.json's
nuisances (view, visible share, points, noise). Scoring rules can then be compared offline
on identical registrations (`benchmarks/nuisance_scoring.py`).

    python benchmarks/template_deviations.py --data ROOT --out DIR [--classes ...] [--device cuda] [--compact]

Writes DIR/<class>.npz (a rerun skips classes already written). ``--compact`` keeps only the
smoothed deviations, labels, nuisances and each scan's raw-offset spread ("spread": 1.4826
MAD of the signed offsets), compressed: small enough to bring back from a device.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from common import class_run_parser
from mvr3d.data.real3d import Real3DAD, list_categories
from mvr3d.geometry.joined import join_clouds, move_clouds
from mvr3d.geometry.surface import anchor_points, smoothed_offsets
from mvr3d.metrics.nuisance import NUISANCES, nuisance_values
from mvr3d.models.registry import create_detector
from mvr3d.scans import as_points


def deviations(detector: object, clouds: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """The steps of ``TemplateDetector.point_deviations``, keeping what each gives."""
    joined, sizes = join_clouds(clouds, detector.device)
    poses = detector.aligner_.pose_joined(joined, sizes)
    moved = move_clouds(joined, sizes, *zip(*[detector._to_reference(pose) for pose in poses], strict=True))
    signed, normals, _ = detector.reference_.signed_distance(moved)
    anchors = [anchor_points(cloud, detector.anchor_stride, detector.seed) for cloud in clouds]
    smoothed = smoothed_offsets(moved.split(sizes), signed.split(sizes), normals.split(sizes), detector.smoothing_k, anchors)
    return [{"points": p.float().cpu().numpy(), "signed": s.float().cpu().numpy(), "smoothed": m.float().cpu().numpy()}
            for p, s, m in zip(moved.split(sizes), signed.split(sizes), smoothed, strict=True)]


def dump_class(root: Path, name: str, out: Path, device: str, batch: int, compact: bool = False) -> None:
    train, test = Real3DAD(root, name, "train"), Real3DAD(root, name, "test")
    detector = create_detector("template", device=device).fit([train[i] for i in range(len(train))], progress=False)
    facts = json.loads((root / "meta.json").read_text())["classes"][name]["scans"]
    arrays: dict[str, np.ndarray] = {}
    stems = []
    for start in range(0, len(test), batch):
        items = [test[i] for i in range(start, min(start + batch, len(test)))]
        with torch.no_grad():
            found = deviations(detector, [as_points(item) for item in items])
        for item, parts in zip(items, found, strict=True):
            stem = Path(item.path).stem
            stems.append(stem)
            signed = parts["signed"].astype(np.float64)
            arrays[f"{stem}/spread"] = np.array(1.4826 * np.median(np.abs(signed - np.median(signed))))
            for key, value in parts.items():
                if not compact or key == "smoothed":
                    arrays[f"{stem}/{key}"] = value
            labels = item.point_labels
            arrays[f"{stem}/labels"] = np.zeros(len(parts["points"]), np.uint8) if labels is None else labels.astype(np.uint8)
            values = nuisance_values(facts[stem])
            arrays[f"{stem}/nuisance"] = np.array([values.get(n, np.nan) for n in NUISANCES])
    arrays["stems"] = np.array(stems)
    arrays["diagonal"] = np.array(float(np.linalg.norm(np.ptp(detector.reference_.points.cpu().numpy(), axis=0))))
    (np.savez_compressed if compact else np.savez)(out / f"{name}.npz", **arrays)


def main() -> None:
    parser = class_run_parser(__doc__)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--compact", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.classes or list_categories(args.data):
        if not (args.out / f"{name}.npz").exists():
            dump_class(args.data, name, args.out, args.device, args.batch, args.compact)
            print(name, flush=True)


if __name__ == "__main__":
    main()
