"""Geometry below models and baselines: neighbours, normals, rotations, voxels, FPFH,
ICP, the template aligner and reference surfaces.

Layering: errors/utils -> io/geometry -> render/data -> models/baselines -> engine -> cli
(checked by tests/test_layers.py). ``fpfh`` and ``icp`` are functions of the submodules
of the same names: import them from there.
"""

from mvr3d.geometry.aligner import TemplateAligner
from mvr3d.geometry.neighbours import NeighbourIndex
from mvr3d.geometry.normals import estimate_normals
from mvr3d.geometry.rotations import random_rotations, rotvec_to_matrix
from mvr3d.geometry.surface import SurfaceReference, fuse_templates, local_planes
from mvr3d.geometry.voxels import bounding_diagonal, voxel_downsample, voxel_thin

__all__ = [
    "NeighbourIndex",
    "SurfaceReference",
    "TemplateAligner",
    "bounding_diagonal",
    "estimate_normals",
    "fuse_templates",
    "local_planes",
    "random_rotations",
    "rotvec_to_matrix",
    "voxel_downsample",
    "voxel_thin",
]
