"""What every benchmark script shares: the machine line, the synthetic test part, tables."""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import numpy as np
import torch

AXES = (30.0, 20.0, 12.0)  # half-axes of the synthetic part, in scan units (mm)


def sync(device: str) -> None:
    """Wait for the accelerator's queued work, so wall-clock timings cover it."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def machine(device: str = "cpu") -> str:
    """The GPU's name, or the CPU model with its cores and torch threads."""
    if str(device).startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    try:
        with open("/proc/cpuinfo") as handle:
            model = next(line.split(":", 1)[1].strip() for line in handle if "model name" in line)
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model}, {len(os.sched_getaffinity(0))} cores, {torch.get_num_threads()} torch threads"


def ellipsoid(n: int, seed: int, noise: float = 0.03, bump: float = 0.0, width: float = 0.02) -> np.ndarray:
    """(n, 3) float32 noisy samples of an ellipsoid with half-axes ``AXES``, optionally with a
    smooth bump of relative height ``bump`` around +z (a synthetic defect)."""
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n, 3))
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    lift = 1 + bump * np.exp(-((p[:, 2] - 1) ** 2) / width)
    p *= lift[:, None] * np.array(AXES)
    p += rng.normal(scale=noise, size=p.shape)  # in place: less peak memory for huge scans
    return p.astype(np.float32)


def markdown_table(columns: list[str], rows: list[list[str]], align: str | list[str] = "---:") -> str:
    """A markdown table: the first column left-aligned, the others by ``align``; or, with a
    list, one separator per column (``"---"`` left, ``"---:"`` right)."""
    aligns = ["---", *[align] * (len(columns) - 1)] if isinstance(align, str) else align
    lines = ["| " + " | ".join(columns) + " |", "|" + "".join(f"{a}|" for a in aligns)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def class_run_parser(doc: str | None, out_help: str | None = None) -> argparse.ArgumentParser:
    """The arguments of a script run over some classes of a benchmark: --data ROOT, --out,
    --classes (default all) and --device (default CUDA when there is one)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help=out_help)
    parser.add_argument("--classes", nargs="*")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser
