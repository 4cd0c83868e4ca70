"""Ablation of template-distance point scores after one registration per scan (CPU is fine).

    python benchmarks/template_scores.py --data ROOT [--classes a b] [--out table.md]

Every test scan is registered once to its nearest template (the product's aligner); then
each variant below scores the registered points, and O-ROC / P-ROC per class are printed
with the Spearman correlation of good scans' scores with each nuisance of meta.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from mvr3d.data import Real3DAD
from mvr3d.geometry import SurfaceReference, TemplateAligner, fuse_templates
from mvr3d.metrics import PooledScores, auroc
from mvr3d.metrics.nuisance import nuisance_correlations
from mvr3d.scans import object_score


def variants(aligner: TemplateAligner, fused: SurfaceReference,
             singles: list[SurfaceReference]):
    def nn_voxel(j, points):
        return aligner.template_distance(j, points - aligner.offsets_[j]).numpy()

    def plane_single(j, points):
        return singles[j].distance(points)

    def plane_fused(j, points):
        return fused.distance(points)

    def z(function):
        def scored(j, points):
            values = function(j, points)
            median = np.median(values)
            return (values - median) / max(1.4826 * np.median(np.abs(values - median)), 1e-12)
        return scored

    return {
        "nn to voxel template (baseline)": nn_voxel,
        "plane, own template": plane_single,
        "plane, fused templates": plane_fused,
        "plane, fused, robust z per scan": z(plane_fused),
        "nn voxel, robust z per scan": z(nn_voxel),
    }


def run_class(root: Path, category: str, facts: dict) -> dict:
    train = [s.points.astype(np.float64) for s in Real3DAD(root, category, "train")]
    aligner = TemplateAligner().fit(train)
    started = time.perf_counter()
    anchor = TemplateAligner().fit([train[0]])
    fused = fuse_templates(train, lambda points: anchor.pose(points)[1:])
    singles = [SurfaceReference(t) for t in train]
    fit_seconds = time.perf_counter() - started
    funcs = variants(aligner, fused, singles)
    scores = {name: ([], PooledScores(), {}) for name in funcs}
    labels = []
    started = time.perf_counter()
    for sample in Real3DAD(root, category, "test"):
        j, moved = aligner.to_template_frame(sample.points.astype(np.float64))
        moved = fused.from_template(j, moved)
        point_labels = sample.point_labels if sample.point_labels is not None else np.zeros(len(moved))
        labels.append(sample.label)
        for name, function in funcs.items():
            values = function(j, moved)
            objects, pooled, by_stem = scores[name]
            objects.append(object_score(values, "top1", 0.01))
            pooled.add(values, point_labels)
            if sample.label == 0:
                by_stem[sample.name] = objects[-1]
    seconds = (time.perf_counter() - started) / len(labels)
    out = {}
    for name, (objects, pooled, by_stem) in scores.items():
        nuisance = nuisance_correlations(by_stem, facts)
        worst = max(nuisance, key=lambda c: abs(c.rho), default=None)
        out[name] = (auroc(np.array(objects), np.array(labels)), pooled.auroc(), worst)
    print(f"{category}: fuse {fit_seconds:.1f} s, {seconds:.2f} s/scan", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--classes", nargs="+")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.manual_seed(0)
    meta = json.loads((args.data / "meta.json").read_text())
    classes = args.classes or meta["class_names"]
    results = {c: run_class(args.data, c, meta["classes"][c]["scans"]) for c in classes}
    names = list(next(iter(results.values())))
    lines = ["| variant | " + " | ".join(classes) + " | mean | worst nuisance |", "|---|" + "---|" * (len(classes) + 2)]
    for name in names:
        cells = [f"{results[c][name][0] * 100:.1f}/{results[c][name][1] * 100:.1f}" for c in classes]
        o = np.mean([results[c][name][0] for c in classes]) * 100
        p = np.mean([results[c][name][1] for c in classes]) * 100
        worst = max((results[c][name][2] for c in classes if results[c][name][2]), key=lambda w: abs(w.rho))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {o:.1f}/{p:.1f} | {worst.nuisance} {worst.rho:+.2f} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
