"""Write the small seed corpus: valid files of every format, one folder per extension.

Each seed starts with the format-selector byte that ``fuzz_readers.py`` expects.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

# Run as a script, so this folder is on sys.path: the harness defines the selector byte.
from fuzz_readers import FORMATS

from mvr3d.io import write_points
from mvr3d.io.pcd import DATA_KINDS, write_pcd
from mvr3d.io.ply import FORMATS as PLY_FORMATS
from mvr3d.io.ply import write_ply

CORPUS = Path(__file__).resolve().parent / "corpus"


def _cloud(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(n)
    return rng.normal(size=(n, 3)).astype(np.float32), rng.random(n).astype(np.float32)


def _write_pts(path: Path, points: np.ndarray) -> None:
    """.pts is read as text but has no writer: stage a .txt and rename it."""
    staged = path.with_name(path.stem + "_pts.txt")
    write_points(staged, points)
    staged.rename(path)


def _writers() -> dict[str, Callable[[Path], None]]:
    """Seed name -> function writing it; small clouds keep the corpus well under 1 MB."""
    pts, vals = _cloud(6)
    labels = np.arange(6, dtype=np.int64) % 2
    faces = np.array([[0, 1, 2], [2, 3, 4]])
    seeds: dict[str, Callable[[Path], None]] = {}
    for kind in DATA_KINDS:
        seeds[f"plain_{kind}.pcd"] = lambda p, k=kind: write_pcd(p, pts, data=k)
        seeds[f"score_{kind}.pcd"] = lambda p, k=kind: write_pcd(p, pts, vals, data=k)
        seeds[f"label_{kind}.pcd"] = lambda p, k=kind: write_pcd(p, pts, labels, data=k)
    for fmt in PLY_FORMATS:
        seeds[f"plain_{fmt}.ply"] = lambda p, f=fmt: write_ply(p, pts, fmt=f)
        seeds[f"mesh_{fmt}.ply"] = lambda p, f=fmt: write_ply(p, pts, vals, faces=faces, fmt=f)
    seeds["colored.ply"] = lambda p: write_points(p, pts, vals)
    for suffix in (".txt", ".xyz", ".npy", ".npz", ".csv"):
        seeds[f"plain{suffix}"] = lambda p: write_points(p, pts)
        seeds[f"values{suffix}"] = lambda p: write_points(p, pts, vals)
    seeds["plain.pts"] = lambda p: _write_pts(p, pts)
    return seeds


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, write in _writers().items():
            suffix = Path(name).suffix
            staged = Path(tmp) / name
            write(staged)
            target = CORPUS / suffix[1:] / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(bytes([FORMATS.index(suffix)]) + staged.read_bytes())


if __name__ == "__main__":
    main()
