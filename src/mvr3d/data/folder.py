"""Users' own data in an MVTec-like folder layout, and layout auto-detection.

``root/train/good/*``, ``root/test/good/*`` and ``root/test/<defect>/*`` hold scans in
any readable point-cloud format. Per-point truth for a defective scan is optional:
``<stem>.labels.txt`` next to the scan (one 0/1 per line) or
``root/ground_truth/<defect>/<stem>.txt`` (``x y z label``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mvr3d.data.real3d import (
    Real3DAD,
    Split,
    check_split,
    labels_from_gt,
    list_categories,
    natural_key,
)
from mvr3d.data.sample import LazySamples, Sample
from mvr3d.errors import DatasetError, InputError
from mvr3d.io import file_problem, read_points, sample_surface

POINT_EXTENSIONS = (".pcd", ".ply", ".txt", ".xyz", ".csv", ".pts", ".npy", ".npz")
# Meshes are normal training shapes too: their surface is sampled (test scans are clouds).
MESH_EXTENSIONS = (".stl", ".obj", ".off")
MESH_SAMPLES = 10_000
LABELS_SUFFIX = ".labels.txt"


def is_scan_file(path: Path) -> bool:
    return (
        path.is_file()
        and path.suffix.lower() in POINT_EXTENSIONS
        and not path.name.lower().endswith(LABELS_SUFFIX)
        and not path.name.startswith(".")
    )


class FolderDataset(LazySamples):
    """One split of a ``train/good``, ``test/<defect>`` folder tree; lazy like Real3DAD."""

    def __init__(
        self, root: str | Path, split: Split = "train", category: str | None = None
    ) -> None:
        check_split(split)
        self.root = Path(root)
        self.split = split
        self.category = category or self.root.resolve().name
        self.skipped: list[tuple[Path, str]] = []  # (path, why) of files that are not read
        self.items = self._list_items()

    def _list_items(self) -> list[tuple[Path, str]]:
        split_dir = self.root / self.split
        if self.split == "train":
            groups = [split_dir / "good"]
        else:
            groups = sorted((p for p in split_dir.glob("*") if p.is_dir()), key=natural_key)
        extensions = POINT_EXTENSIONS + (MESH_EXTENSIONS if self.split == "train" else ())
        items = []
        for group in groups:
            for path in sorted(group.glob("*"), key=natural_key):
                why = self._why_skipped(path, extensions)
                if why is None:
                    items.append((path, group.name))
                elif why:
                    self.skipped.append((path, why))
        if not items:
            where = split_dir / "good" if self.split == "train" else split_dir / "<defect>"
            raise DatasetError(f"no scans with extension {'/'.join(POINT_EXTENSIONS)} found", where)
        return items

    @staticmethod
    def _why_skipped(path: Path, extensions: tuple[str, ...]) -> str | None:
        """None for a scan to read; "" for files that are not scans by convention (hidden
        files, per-point labels); otherwise why a file in a scan folder is not read."""
        name = path.name.lower()
        if path.name.startswith(".") or name.endswith(LABELS_SUFFIX):
            return ""
        problem = file_problem(path)
        if problem is not None:
            return problem
        if path.suffix.lower() not in extensions:
            return f"not a readable scan format (reads {' '.join(extensions)})"
        return None

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> Sample:
        return self._load(*self.items[index])

    def _load(self, path: Path, defect: str) -> Sample:
        cloud = read_points(path)
        points = cloud.points
        if cloud.faces is not None and len(cloud.faces) and path.suffix.lower() in MESH_EXTENSIONS:
            try:
                points = sample_surface(cloud.points, cloud.faces, MESH_SAMPLES, seed=0)
            except InputError as error:
                raise InputError(str(error), path) from None
        stem = path.stem
        if self.split == "train":
            return Sample(stem, path, points, None, 0, "good", self.category)
        if defect == "good":
            labels: np.ndarray | None = np.zeros(len(points), np.uint8)
        else:
            labels = self._read_labels(path, defect, len(points))
        # Without per-point truth a scan filed under a defect folder is still anomalous.
        label = 0 if defect == "good" else int(labels is None or bool(labels.any()))
        return Sample(stem, path, points, labels, label, defect, self.category)

    def label_paths(self, path: Path, defect: str) -> tuple[Path, Path]:
        """Where per-point truth may live: beside the scan, or under ground_truth/."""
        beside = path.with_name(path.stem + LABELS_SUFFIX)
        return beside, self.root / "ground_truth" / defect / f"{path.stem}.txt"

    def _read_labels(self, path: Path, defect: str, n_points: int) -> np.ndarray | None:
        beside, gt = self.label_paths(path, defect)
        if beside.is_file():
            labels, source = read_label_column(beside), beside
        elif gt.is_file():
            labels, source = labels_from_gt(read_points(gt).values, gt), gt
        else:
            return None
        if len(labels) != n_points:
            raise DatasetError(
                f"point count mismatch: scan {path} has {n_points} points, "
                f"labels {source} has {len(labels)}"
            )
        return labels

    def __repr__(self) -> str:
        return f"FolderDataset(root={str(self.root)!r}, split={self.split!r}, n={len(self)})"


def read_label_column(path: Path) -> np.ndarray:
    try:
        values = np.loadtxt(path, ndmin=1)
    except ValueError as error:
        raise DatasetError(f"label file must hold one 0/1 per line: {error}", path) from error
    if values.ndim != 1:
        raise DatasetError(
            f"label file must hold one 0/1 per line, got {values.shape[1]} columns", path
        )
    return (values > 0.5).astype(np.uint8)


def open_dataset(
    root: str | Path, category: str | None = None, split: Split = "train"
) -> Real3DAD | FolderDataset:
    """Open ``root`` in whichever layout it has (Real3D-AD or folder layout)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError("dataset root is not a folder", root)
    if category is not None:
        if (root / category / "train" / "good").is_dir():
            return FolderDataset(root / category, split, category)
        if (root / category / "train").is_dir():
            return Real3DAD(root, category, split)
        raise DatasetError(
            f"category {category!r} not found (looked for {category}/train/ and {category}/train/good/)",
            root,
        )
    if (root / "train" / "good").is_dir():
        return FolderDataset(root, split)
    if any((root / "train").glob("*template*.pcd")):
        # Pointed at one Real3D-AD category folder itself.
        return Real3DAD(root.parent, root.name, split)
    if any((p / "train").is_dir() for p in root.iterdir()):
        raise DatasetError(
            f"this is a multi-category dataset; pass a category (one of {list_categories(root)})",
            root,
        )
    raise DatasetError(
        "unknown layout: expected <root>/<category>/train/*template*.pcd (Real3D-AD) "
        "or <root>/train/good/ (folder layout)",
        root,
    )
