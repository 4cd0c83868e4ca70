"""Time and peak memory of render_views: 27 views at 672 -> 224 px for 100k/1M/3M points.

Each size runs in its own subprocess so that peak RSS (CPU) is per size. Writes a
Markdown table to benchmarks/render_<device>.md (atomically) and prints it.

    python benchmarks/render.py --device cpu
    python benchmarks/render.py --device cuda --sizes 100000 1000000 3000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from common import ellipsoid, machine, markdown_table
from mvr3d.render import RenderConfig, paper_poses, render_views
from mvr3d.utils.atomic import atomic_write_text

SIZES = (100_000, 1_000_000, 3_000_000)
REPEATS = 3


def surface_cloud(n: int, device: str) -> torch.Tensor:
    """The synthetic part in millimetres, far from the origin (like a real scan): no noise and
    one 5 % bump (this script's own cloud had 40 x 25 x 15 half-axes and a 5 % ripple all over)."""
    return (torch.from_numpy(ellipsoid(n, 0, noise=0.0, bump=0.05)) + 1000.0).to(device)


def measure(n: int, device: str) -> dict[str, float]:
    """Run in a fresh process: median seconds of REPEATS after a warm-up, peak memory."""
    points, poses, config = surface_cloud(n, device), paper_poses(), RenderConfig()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    render_views(points, poses, config)
    sync()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        multiview = render_views(points, poses, config)
        sync()
        times.append(time.perf_counter() - start)
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    )
    return {
        "points": n,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "peak_mib": peak,
        "baseline_mib": rss_before if device == "cpu" else 0.0,
        "coverage": multiview.coverage,
    }


def table(rows: list[dict[str, float]], device: str) -> str:
    memory = "peak CUDA allocated" if device == "cuda" else "peak RSS (process baseline)"
    lines = [
        f"# render_views benchmark ({device})",
        "",
        f"Machine: {machine(device)}; torch {torch.__version__}; load average "
        f"{os.getloadavg()[0]:.2f} at the end.",
        f"27 paper poses, orthographic, depth+shading, 672 -> 224 px; median of {REPEATS} "
        "runs after one warm-up.",
        "",
    ]
    columns = ["points", "median s", "min s", f"{memory} MiB", "coverage"]
    cells = [
        [
            f"{int(row['points']):,}", f"{row['median_s']:.3f}", f"{row['min_s']:.3f}",
            f"{row['peak_mib']:.0f}" + (f" ({row['baseline_mib']:.0f})" if device == "cpu" else ""),
            f"{row['coverage']:.3f}",
        ]
        for row in rows
    ]
    return "\n".join(lines) + "\n" + markdown_table(columns, cells, align=["---:"] * len(columns))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(measure(args.worker, args.device)))
        return 0
    rows = []
    for n in args.sizes:
        command = [sys.executable, __file__, "--device", args.device, "--worker", str(n)]
        if args.threads:
            command += ["--threads", str(args.threads)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
        print(f"{n:,} points: {rows[-1]['median_s']:.3f} s", file=sys.stderr)
    report = table(rows, args.device)
    atomic_write_text(Path(__file__).with_name(f"render_{args.device}.md"), report)
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
