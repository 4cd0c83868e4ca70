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
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from mvr3d.render import RenderConfig, paper_poses, render_views
from mvr3d.utils.atomic import atomic_write_text

SIZES = (100_000, 1_000_000, 3_000_000)
REPEATS = 3


def surface_cloud(n: int, device: str) -> torch.Tensor:
    """A bumpy ellipsoid in millimetres, far from the origin (like a real scan)."""
    generator = torch.Generator().manual_seed(0)
    directions = torch.randn(n, 3, generator=generator)
    directions /= directions.norm(dim=1, keepdim=True)
    bumps = 1.0 + 0.05 * torch.sin(8.0 * directions[:, 0]) * torch.cos(6.0 * directions[:, 1])
    points = directions * bumps[:, None] * torch.tensor([40.0, 25.0, 15.0]) + 1000.0
    return points.to(device)


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


def machine(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name(0)
    try:
        with open("/proc/cpuinfo") as handle:
            model = next(line.split(":", 1)[1].strip() for line in handle if "model name" in line)
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    return f"{model}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


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
        f"| points | median s | min s | {memory} MiB | coverage |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        baseline = f" ({row['baseline_mib']:.0f})" if device == "cpu" else ""
        lines.append(
            f"| {int(row['points']):,} | {row['median_s']:.3f} | {row['min_s']:.3f} | "
            f"{row['peak_mib']:.0f}{baseline} | {row['coverage']:.3f} |"
        )
    return "\n".join(lines) + "\n"


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
