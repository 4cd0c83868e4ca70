"""Datasets (Real3D-AD layout, users' folders) and the Real3D-AD-style benchmark builder."""

from mvr3d.data.builder import make_benchmark
from mvr3d.data.defects import DEFECT_KINDS, add_defect
from mvr3d.data.demo import demo_shapes_dir, make_demo_dataset
from mvr3d.data.folder import FolderDataset, open_dataset
from mvr3d.data.presets import PRESETS, STANDARD, TINY, BenchmarkPreset
from mvr3d.data.real3d import Real3DAD, list_categories
from mvr3d.data.sample import Sample

__all__ = [
    "DEFECT_KINDS",
    "PRESETS",
    "STANDARD",
    "TINY",
    "BenchmarkPreset",
    "FolderDataset",
    "Real3DAD",
    "Sample",
    "add_defect",
    "demo_shapes_dir",
    "list_categories",
    "make_benchmark",
    "make_demo_dataset",
    "open_dataset",
]
