"""Read-speed benchmark for mvr3d.io: binary PCD, binary PLY and NPY with 2M points.

Run: ``python benchmarks/io_read.py``; prints a Markdown table and writes io_read.md.
"""

from __future__ import annotations

import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from common import machine
from mvr3d.io import read_points, write_points
from mvr3d.utils.atomic import atomic_write_text

N_POINTS = 2_000_000
REPEATS = 5
TARGET_PCD = 50.0  # M points / s


def best_time(path: Path, repeats: int = REPEATS) -> float:
    """Best-of-``repeats`` wall time of read_points (the file stays in the page cache)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        cloud = read_points(path)
        best = min(best, time.perf_counter() - start)
        assert len(cloud) == N_POINTS
    return best


def main() -> str:
    rng = np.random.default_rng(0)
    points = rng.normal(size=(N_POINTS, 3)).astype(np.float32)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, suffix in (("PCD binary", ".pcd"), ("PLY binary LE", ".ply"), ("NPY", ".npy")):
            path = write_points(Path(tmp) / f"cloud{suffix}", points)
            seconds = best_time(path)
            rows.append((name, N_POINTS, seconds, N_POINTS / seconds / 1e6))
    lines = [
        f"Read speed of `mvr3d.io.read_points`, best of {REPEATS} (warm page cache).",
        "",
        f"Machine: {machine('cpu')}; {platform.system()}, Python {platform.python_version()}",
        "",
        "| format | points | seconds | M points/s |",
        "|---|---:|---:|---:|",
        *(f"| {f} | {n:,} | {s:.4f} | {r:.1f} |" for f, n, s, r in rows),
    ]
    table = "\n".join(lines) + "\n"
    atomic_write_text(Path(__file__).with_name("io_read.md"), table)
    return table


if __name__ == "__main__":
    print(main())
