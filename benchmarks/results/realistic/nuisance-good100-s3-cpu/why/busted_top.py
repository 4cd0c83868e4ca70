"""Throwaway: where the `template` method's top-1 % points lie on good scans of one class
(seed 3 build with 100 good scans a class), and which per-scan quantities follow the side
scanned.

    python busted_top.py [CLASS]   (default busted; data in /work/data/std_s3_good100)
"""

import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from mvr3d.data.real3d import Real3DAD
from mvr3d.detectors import create_detector

ROOT = "/work/data/std_s3_good100"


def main() -> None:
    category = sys.argv[1] if len(sys.argv) > 1 else "busted"
    facts = json.loads(Path(ROOT, "meta.json").read_text())["classes"][category]["scans"]
    train = Real3DAD(ROOT, category, "train")
    detector = create_detector("template").fit([train[i].points for i in range(len(train))])
    test = Real3DAD(ROOT, category, "test")
    rows = []
    for i in range(len(test)):
        sample = test[i]
        if sample.label != 0:
            continue
        scan = facts[sample.name]
        result = detector.score(sample.points)
        rotation, shift = np.array(scan["rotation"]), np.array(scan["translation"])
        mesh = (sample.points - shift) @ rotation  # back to the mesh frame (scan = mesh @ R.T + t)
        top = np.argsort(result.point_scores)[-max(1, len(mesh) // 100):]
        rows.append((scan["view"][2], result.object_score, mesh[top, 2].mean(), mesh[:, 2].mean(),
                     float(np.median(result.point_scores)), len(mesh)))
    table = np.array(rows)
    print(category, "good scans", len(table))
    for j, name in enumerate(["view_z", "object", "top z", "scan z", "median score", "points"]):
        print(f"{name:>12}: rho with view_z {spearmanr(table[:, 0], table[:, j])[0]:+.2f}, "
              f"with object {spearmanr(table[:, 1], table[:, j])[0]:+.2f}")
    print("top-point z quantiles", np.quantile(table[:, 2], [0.1, 0.5, 0.9]).round(2))
    up, down = table[:, 0] > 0.3, table[:, 0] < -0.3
    print("from above: object", table[up, 1].mean().round(3), "top z", table[up, 2].mean().round(2),
          "| from below: object", table[down, 1].mean().round(3), "top z", table[down, 2].mean().round(2))


if __name__ == "__main__":
    main()
