"""Reader for the Real3D-AD layout (Liu et al., NeurIPS 2023).

``<root>/<category>/train/*template*.pcd`` are complete scans of good parts,
``<root>/<category>/test/*.pcd`` partial scans (a name containing "good" is all-normal)
and ``<root>/<category>/gt/<stem>.txt`` holds ``x y z label`` per point of a defective
scan, in the scan's point order.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import numpy as np

from mvr3d.data.sample import LazySamples, Sample
from mvr3d.errors import DatasetError
from mvr3d.io import read_points

Split = Literal["train", "test"]


def natural_key(path: Path) -> tuple:
    """Sort ``2_good`` before ``10_good``, as a person reading the folder would."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name))


def check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise DatasetError(f"split must be 'train' or 'test', got {split!r}")


def list_categories(root: str | Path) -> list[str]:
    """Names of the category folders under ``root`` (those having a ``train/`` folder)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError("dataset root is not a folder", root)
    names = sorted(p.name for p in root.iterdir() if (p / "train").is_dir())
    if not names:
        raise DatasetError("no category folders (<root>/<category>/train/) found", root)
    return names


def labels_from_gt(values: np.ndarray | None, gt_path: Path) -> np.ndarray:
    if values is None:
        raise DatasetError(
            "ground-truth file has no label column (expected 'x y z label')", gt_path
        )
    return (np.asarray(values) > 0.5).astype(np.uint8)


class Real3DAD(LazySamples):
    """One category and split of a Real3D-AD tree; files are read on item access only."""

    def __init__(self, root: str | Path, category: str, split: Split = "train") -> None:
        check_split(split)
        self.root = Path(root)
        self.category = category
        self.split = split
        self.category_dir = self.root / category
        if not self.category_dir.is_dir():
            raise DatasetError(f"category folder {category!r} not found", self.category_dir)
        self.files = self._list_files()

    def _list_files(self) -> list[Path]:
        folder = self.category_dir / self.split
        pattern = "*template*.pcd" if self.split == "train" else "*.pcd"
        files = sorted(folder.glob(pattern), key=natural_key) if folder.is_dir() else []
        if not files:
            what = "template scans" if self.split == "train" else "test scans"
            raise DatasetError(f"no {what} matching '{pattern}' found", folder)
        return files

    def gt_path(self, scan: Path) -> Path:
        return self.category_dir / "gt" / f"{scan.stem}.txt"

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int) -> Sample:
        return self._load(self.files[index])

    def _load(self, path: Path) -> Sample:
        points = read_points(path).points
        if self.split == "train":
            return self._sample(path, points, None, "good")
        if "good" in path.stem:
            return self._sample(path, points, np.zeros(len(points), np.uint8), "good")
        labels = self._read_gt(path, len(points))
        return self._sample(path, points, labels, defect_from_name(path.stem))

    def _read_gt(self, scan: Path, n_points: int) -> np.ndarray:
        gt = self.gt_path(scan)
        if not gt.is_file():
            raise DatasetError(
                f"defective test scan {scan.name} needs its ground truth {gt.name}, not found", gt
            )
        labels = labels_from_gt(read_points(gt).values, gt)
        if len(labels) != n_points:
            raise DatasetError(
                f"point count mismatch: scan {scan} has {n_points} points, "
                f"ground truth {gt} has {len(labels)}"
            )
        return labels

    def _sample(
        self, path: Path, points: np.ndarray, labels: np.ndarray | None, defect: str
    ) -> Sample:
        label = int(labels is not None and bool(labels.any()))
        return Sample(path.stem, path, points, labels, label, defect, self.category)

    def __repr__(self) -> str:
        return f"Real3DAD(root={str(self.root)!r}, category={self.category!r}, split={self.split!r}, n={len(self)})"


def defect_from_name(stem: str) -> str:
    """``12_bulge`` -> ``bulge``: Real3D-AD encodes the defect type after the index."""
    parts = [p for p in re.split(r"[_\-]", stem) if p and not p.isdigit()]
    return "_".join(parts) if parts else "defect"
