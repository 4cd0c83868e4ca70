"""Geometry below models and baselines: voxels, reference surfaces.

Layering: errors/utils -> io/geometry -> render/data -> models/baselines -> engine -> cli.
"""

from mvr3d.geometry.surface import SurfaceReference, fuse_templates, local_planes
from mvr3d.geometry.voxels import bounding_diagonal, voxel_downsample

__all__ = ["SurfaceReference", "bounding_diagonal", "fuse_templates", "local_planes", "voxel_downsample"]
