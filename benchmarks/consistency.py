"""Numerical checks of the fast paths and of determinism, on one device.

    python benchmarks/consistency.py --device cuda

1. Same seed, two fits: how far apart are the scores (CPU: must be bit-identical;
   CUDA: the issue allows 1e-5)?
2. The same fitted detector scoring the same scans twice.
3. The fast path (float16 autocast for scoring, batched scans) and the bfloat16 variant
   against the float32 reference of the same detector on the same inputs, one scan at a time.
Writes ``benchmarks/consistency_<device>.md``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from common import ellipsoid
from mvr3d.models import MVRConfig, MVRDetector, Runtime
from mvr3d.utils.atomic import atomic_write_text


def scan(n: int, seed: int) -> np.ndarray:
    """The synthetic part with noise 0.03; odd seeds get an 8 % bump of width 0.02."""
    return ellipsoid(n, seed, noise=0.03, bump=0.08 * (seed % 2), width=0.02)


def compare(a: list, b: list) -> dict:
    pa = np.concatenate([r.point_scores for r in a])
    pb = np.concatenate([r.point_scores for r in b])
    oa = np.array([r.object_score for r in a])
    ob = np.array([r.object_score for r in b])
    scale = np.abs(pb).max()
    return {
        "identical": bool(np.array_equal(pa, pb) and np.array_equal(oa, ob)),
        "max_abs": float(np.abs(pa - pb).max()),
        "max_rel_to_scale": float(np.abs(pa - pb).max() / scale),
        "p99_rel": float(np.quantile(np.abs(pa - pb) / np.maximum(np.abs(pb), 1e-12), 0.99)),
        "object_max_rel": float((np.abs(oa - ob) / np.abs(ob)).max()),
    }


def sharing(fitted: MVRDetector, **changes: object) -> MVRDetector:
    """A detector with ``fitted``'s weights and templates but other scoring settings."""
    other = MVRDetector(fitted.config, fitted.runtime, **changes)
    other.net, other.radius_ = fitted.net, fitted.radius_
    other.aligner_, other.template_centres_ = fitted.aligner_, fitted.template_centres_
    other.sides_, other.score_stats_ = fitted.sides_, fitted.score_stats_
    other.deviation_stats_ = fitted.deviation_stats_
    return other


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--compile", action="store_true", help="also check compile=True (compiles for ~45 s)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    config = MVRConfig(
        weights="random", views="paper27", iterations=args.iterations, augment_rotations=2
    )
    runtime = Runtime(device=args.device)
    templates = [scan(args.points, 2 * s) for s in range(4)]
    tests = [scan(args.points, 100 + s) for s in range(6)]
    first = MVRDetector(config, runtime).fit(templates, progress=False)
    second = MVRDetector(config, runtime).fit(templates, progress=False)
    fast = first.score_many(tests)
    rows = [
        ("two fits, same seed", compare(second.score_many(tests), fast)),
        ("one detector, scored twice", compare(first.score_many(tests), fast)),
    ]
    bfloat16 = sharing(first, score_dtype="bfloat16").score_many(tests)
    compiled = sharing(first, compile=True).score_many(tests) if args.compile else None
    reference = sharing(first, amp=False)
    torch.backends.cudnn.allow_tf32 = False  # a true float32 reference (cuDNN convolutions default to TF32)
    truth = [reference.score(t) for t in tests]
    rows.append((f"fast path ({runtime.score_dtype}) vs float32, one scan at a time", compare(fast, truth)))
    rows.append(("bfloat16 scoring vs float32", compare(bfloat16, truth)))
    if compiled is not None:
        rows.append((f"compiled fast path ({runtime.score_dtype}) vs float32", compare(compiled, truth)))
    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "CPU"
    lines = [
        f"Consistency on {name} ({time.strftime('%Y-%m-%d')}): ViT-S random weights, {args.iterations} iterations, "
        f"27 views, {len(tests)} scans of {args.points:,} points; on CUDA training runs in bfloat16 and scoring "
        f"in {runtime.score_dtype} autocast.",
        "Relative figures divide by the largest reference score (max) or by each point's score (99th percentile).",
        "",
        "| check | bit-identical | max abs diff | max diff / max score | p99 per-point rel | object score max rel |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for label, r in rows:
        lines.append(
            f"| {label} | {r['identical']} | {r['max_abs']:.2e} | {r['max_rel_to_scale']:.2e} "
            f"| {r['p99_rel']:.2e} | {r['object_max_rel']:.2e} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    atomic_write_text(args.out or Path(__file__).with_name(f"consistency_{args.device.split(':')[0]}.md"), text)


if __name__ == "__main__":
    main()
