"""How well does the template aligner register partial scans? Checked against the true pose.

    python benchmarks/registration_check.py --data ROOT [--classes a b] [--limit 10]

``mvr3d make-benchmark`` records every test scan's pose (``meta.json``: scan = mesh frame
@ R.T + t) and its templates are in the mesh frame, so the aligner's result can be compared
with the truth. For each scan: the median distance between the registered points and their
true template-frame positions (as a share of the object's diagonal; symmetric parts may
register to an equally good symmetric pose, so the trimmed residual to the template is
printed too), and the O-ROC of the template distance after the aligner's registration
versus after the true one (what registration costs the template-distance score).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from mvr3d.data import Real3DAD
from mvr3d.geometry import TemplateAligner
from mvr3d.metrics import auroc
from mvr3d.scans import object_score


def check_class(root: Path, category: str, meta: dict, limit: int | None, device: str, params: dict) -> dict:
    train = [s.points for s in Real3DAD(root, category, "train")]
    test = Real3DAD(root, category, "test")
    aligner = TemplateAligner(device=device, **params).fit(train)
    diagonal = float(np.linalg.norm(np.ptp(np.concatenate(train), axis=0)))
    errors, registered, truth, labels = [], [], [], []
    started = time.perf_counter()
    for index in range(len(test) if limit is None else min(limit, len(test))):
        sample = test[index]
        pose = meta["scans"][sample.path.stem]
        rotation, shift = np.array(pose["rotation"]), np.array(pose["translation"])
        true_points = (sample.points.astype(np.float64) - shift) @ rotation
        j, moved = aligner.to_template_frame(sample.points.astype(np.float64))
        errors.append(float(np.median(np.linalg.norm(moved - true_points, axis=1))) / diagonal)
        registered.append(_top1(aligner, j, moved))
        truth.append(min(_top1(aligner, k, true_points) for k in range(len(train))))
        labels.append(sample.label)
    errors_array = np.array(errors)
    return {
        "class": category,
        "scans": len(errors),
        "median_error": float(np.median(errors_array)),
        "failed_share": float((errors_array > 0.01).mean()),
        # Symmetric parts may sit in another, equally good pose: judge by the score instead.
        "worse_share": float((np.array(registered) > 1.5 * np.array(truth)).mean()),
        "o_roc_registered": auroc(np.array(registered), np.array(labels)),
        "o_roc_true_pose": auroc(np.array(truth), np.array(labels)),
        "seconds_per_scan": (time.perf_counter() - started) / max(1, len(errors)),
    }


def _top1(aligner: TemplateAligner, template: int, points: np.ndarray) -> float:
    distances = aligner.template_distance(template, points - aligner.offsets_[template]).cpu().numpy()
    return object_score(distances, "top1", 0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--classes", nargs="+")
    parser.add_argument("--limit", type=int, help="test scans per class (default all)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--aligner", type=json.loads, default={}, help="TemplateAligner parameters as JSON")
    args = parser.parse_args()
    meta = json.loads((args.data / "meta.json").read_text())
    classes = args.classes or meta["class_names"]
    print(f"aligner parameters: {json.dumps(args.aligner)}")
    print("| class | scans | median error / diag | share > 1 % | share top-1 % > 1.5x true pose's | "
          "O-ROC registered | O-ROC true pose | s/scan |")
    print("|---|---|---|---|---|---|---|---|")
    for category in classes:
        row = check_class(args.data, category, meta["classes"][category], args.limit, args.device, args.aligner)
        print(f"| {row['class']} | {row['scans']} | {row['median_error']:.4f} | {row['failed_share']:.2f} | "
              f"{row['worse_share']:.2f} | "
              f"{row['o_roc_registered'] * 100:.1f} | {row['o_roc_true_pose'] * 100:.1f} | {row['seconds_per_scan']:.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
