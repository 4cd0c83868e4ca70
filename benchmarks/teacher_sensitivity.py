"""How far the frozen teacher's tokens move for a defect, against scanner noise alone.

    python benchmarks/teacher_sensitivity.py --data ROOT --shapes DIR --classes fertility fandisk

For each class of a `make-benchmark` dataset, one partial scan is sampled from its mesh
(the builder's scanner model) and rendered with the detector's poses and render settings.
Three versions go through the DINOv2 teacher: the scan with scanner noise, the same scan
with another noise draw, and the first one with a bulge or sink of a given peak height.
Per token, 1 - cos(teacher features) averaged over the 8 layers MVR reconstructs; the
table gives the largest change for the defect and for the second noise draw. A ratio
near or below 1 means no student can tell that defect from noise in that rendering.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mvr3d.data.defects import add_defect
from mvr3d.data.real3d import Real3DAD
from mvr3d.data.scanner import Scanner, load_mesh, sample_with_normals
from mvr3d.models import MVRConfig, MVRDetector
from mvr3d.render import RenderConfig
from mvr3d.utils.atomic import atomic_write_text
from mvr3d.utils.provenance import provenance

VIEW = np.array([0.2, 0.1, 1.0]) / np.linalg.norm([0.2, 0.1, 1.0])


def teacher_tokens(detector: MVRDetector, points: np.ndarray) -> torch.Tensor:
    """Mean over the reconstructed teacher layers, (views, tokens, dim)."""
    _, images = detector._render(points, detector._poses(), detector.template_centres_[0])
    return torch.stack(detector.net.teacher_layers(images)).mean(dim=0)


def token_change(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((1 - F.cosine_similarity(a, b, dim=-1)).max())


def class_rows(root: Path, shapes: Path, category: str, render: RenderConfig, args: argparse.Namespace) -> list[str]:
    meta = json.loads((root / "meta.json").read_text())["classes"][category]
    mesh = load_mesh(shapes / meta["source"], meta["size_mm"])
    config = MVRConfig(iterations=1, augment_rotations=0, align=False, seed=0, render=render)
    detector = MVRDetector(config, device="cpu").fit(Real3DAD(root, category, "train"), progress=False)
    points, normals = sample_with_normals(mesh, args.points, np.random.default_rng(1))
    camera = Scanner(VIEW, 2.0 * np.sqrt(mesh.area / args.points), mesh.is_watertight)
    visible = camera.visible(points, normals)
    size = float(np.linalg.norm(mesh.extents))

    def scanned(cloud: np.ndarray, seed: int, noise: float) -> np.ndarray:
        offsets = np.random.default_rng(seed).normal(scale=noise * size, size=len(cloud))
        return (cloud + np.outer(offsets, VIEW)).astype(np.float32)

    rows = []
    for noise in args.noise:
        clean = teacher_tokens(detector, scanned(points[visible], 11, noise))
        other = token_change(clean, teacher_tokens(detector, scanned(points[visible], 12, noise)))
        for kind in ("bulge", "sink"):
            for height in args.heights:
                moved, _ = add_defect(points, normals, kind, np.random.default_rng(7), (0.025, 0.03), visible, (height, height))
                change = token_change(clean, teacher_tokens(detector, scanned(moved[visible], 11, noise)))
                rows.append(f"| {category} | {render.shading_sigma:g} | {noise:.3f} | {kind} | {height:.3f} "
                            f"| {change:.3f} | {other:.3f} | {change / other:.2f} |")
                print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a `mvr3d make-benchmark` root")
    parser.add_argument("--shapes", type=Path, required=True, help="the meshes it was built from")
    parser.add_argument("--classes", nargs="+", default=["fertility"])
    parser.add_argument("--noise", type=float, nargs="+", default=[0.001, 0.003], help="fractions of the diagonal")
    parser.add_argument("--heights", type=float, nargs="+", default=[0.015, 0.025, 0.035])
    parser.add_argument("--shading-sigma", type=float, nargs="+", default=[0.0])
    parser.add_argument("--points", type=int, default=150_000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/teacher_sensitivity_cpu.md"))
    args = parser.parse_args()
    torch.manual_seed(0)
    started = time.perf_counter()
    lines = [
        "# Teacher token change: defect vs scanner noise (benchmarks/teacher_sensitivity.py)", "",
        "Largest per-token 1 - cos over the 8 reconstructed DINOv2 ViT-S layers, 3 views. Noise and",
        "defect height are fractions of the object's diagonal (the standard benchmark draws noise",
        "0.001-0.003 and heights 0.015-0.035).", "",
        "| class | shading sigma (px) | noise | defect | height | defect change | noise-draw change | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base = MVRConfig().render
    for sigma in args.shading_sigma:
        render = RenderConfig(**{**base.to_dict(), "shading_sigma": sigma})
        for category in args.classes:
            lines += class_rows(args.data, args.shapes, category, render, args)
    record = provenance()
    lines += ["", f"CPU, {time.perf_counter() - started:.0f} s; git {record.get('git')}, torch {torch.__version__}."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
