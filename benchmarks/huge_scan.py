"""Huge scans end to end: ``predict`` (read, register, render, score, write) on 1M-10M points.

    python benchmarks/huge_scan.py --device cpu
    python benchmarks/huge_scan.py --device cuda --points 1000000 10000000 30000000

A detector (ViT-S, random weights, default config otherwise) is fitted on 200k-point
templates and saved; each scan size then runs in a fresh process (so its peak resident
memory is its own) through :func:`mvr3d.engine.predict_files`, which reads a binary PCD
and writes ``<stem>.txt`` and a PLY heatmap. Writes ``benchmarks/huge_scan_<device>.md``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import ellipsoid, machine, markdown_table
from mvr3d.engine import predict_files
from mvr3d.io import write_points
from mvr3d.models import MVRConfig, MVRDetector
from mvr3d.utils.atomic import atomic_write_text

GIB = 2**30


def surface(n: int, seed: int) -> np.ndarray:
    """Noisy ellipsoid surface (60 x 40 x 24 units), noise 0.02, a 10 % bump of width 0.01."""
    return ellipsoid(n, seed, noise=0.02, bump=0.1, width=0.01)


def child(checkpoint: Path, points: int, device: str, work: Path) -> dict:
    scan = work / f"scan_{points}.pcd"
    write_points(scan, surface(points, 7))
    detector = MVRDetector.load(checkpoint, device=device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    rows = predict_files(detector, scan, work / f"out_{points}", heatmaps=True)
    seconds = time.perf_counter() - started
    scores = np.loadtxt(work / f"out_{points}" / f"scan_{points}.txt", usecols=3, max_rows=5)
    return {
        "points": points,
        "seconds": seconds,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB,
        "peak_gpu_gib": torch.cuda.max_memory_allocated() / GIB if device.startswith("cuda") else None,
        "estimate_gib": detector._memory_needed(points) / GIB,
        "object_score": rows[0]["object_score"],
        "coverage": rows[0]["coverage"],
        "scores_finite": bool(np.isfinite(scores).all()),
    }


def table(rows: list[dict], device: str, fit_seconds: float) -> str:
    lines = [
        f"Huge scans through `predict` on {machine(device)} ({time.strftime('%Y-%m-%d')}): ViT-S random weights, "
        f"27 views at 672 -> 224, registration on; detector fitted in {fit_seconds:.0f} s on 4 x 200k points.",
        "Time covers reading the PCD, registering, rendering, scoring and writing the .txt and .ply outputs.",
        "",
    ]
    columns = ["points", "seconds", "peak RSS GiB", "peak GPU GiB", "estimate GiB", "coverage", "object score"]
    cells = [
        [
            f"{r['points']:,}", f"{r['seconds']:.1f}", f"{r['peak_rss_gib']:.1f}",
            f"{r['peak_gpu_gib']:.1f}" if r["peak_gpu_gib"] is not None else "-",
            f"{r['estimate_gib']:.1f}", f"{r['coverage']:.3f}", f"{r['object_score']:.4f}",
        ]
        for r in rows
    ]
    return "\n".join(lines) + "\n" + markdown_table(columns, cells, align=["---:"] * len(columns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--points", type=int, nargs="+", default=[1_000_000, 3_000_000, 10_000_000])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", nargs=3, metavar=("CHECKPOINT", "POINTS", "WORK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        checkpoint, points, work = args.child
        print(json.dumps(child(Path(checkpoint), int(points), args.device, Path(work))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config = MVRConfig(
            weights="random", views="paper27", iterations=args.iterations, augment_rotations=2
        )
        started = time.perf_counter()
        detector = MVRDetector(config, device=args.device).fit([surface(200_000, s) for s in range(4)], progress=False)
        fit_seconds = time.perf_counter() - started
        detector.save(work / "model")
        rows = []
        for points in args.points:
            command = [sys.executable, __file__, "--device", args.device, "--child", str(work / "model"), str(points), tmp]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode:
                print(done.stderr[-3000:], file=sys.stderr)
                rows.append({"points": points, "failed": done.stderr.strip().splitlines()[-1:]})
                break
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    good = [r for r in rows if "failed" not in r]
    text = table(good, args.device, fit_seconds)
    text += "".join(f"\n{r['points']:,} points failed: {r['failed']}\n" for r in rows if "failed" in r)
    print(text)
    atomic_write_text(args.out or Path(__file__).with_name(f"huge_scan_{args.device.split(':')[0]}.md"), text)


if __name__ == "__main__":
    main()
