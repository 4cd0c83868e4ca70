"""Camera fitting and projection: pure functions on tensors.

Frame: after a pose rotates the centred, scaled cloud, the camera looks along -z from
the +z side; image columns follow +x and rows follow -y (so +y is up). Depth is the
distance from the camera along the view axis, always positive. All views of a scan
share one centre and one scale, so their pixels and depths are comparable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from mvr3d.errors import InputError
from mvr3d.io.cloud import check_layout, check_values, extremes_ok
from mvr3d.render.config import RenderConfig


@dataclass(frozen=True)
class Camera:
    """Intrinsics in scaled units, where the cloud fits in the unit sphere."""

    projection: str
    size: int
    half_extent: float  # half width of the view at the centre depth
    distance: float  # depth of the object's centre
    tan_half_fov: float  # perspective only

    @property
    def pixel_size(self) -> float:
        """Width of one render pixel at the centre depth, in scaled units."""
        return 2.0 * self.half_extent / self.size

    @property
    def depth_bounds(self) -> tuple[float, float]:
        """Nearest and farthest depth the unit sphere can have."""
        return self.distance - 1.0, self.distance + 1.0


def make_camera(config: RenderConfig) -> Camera:
    """A camera whose view holds the unit sphere plus ``config.margin`` on every side."""
    half = 1.0 + config.margin
    if config.projection == "orthographic":
        # Place the image plane just outside the sphere so every depth is positive.
        return Camera("orthographic", config.render_size, half, half, 0.0)
    half_fov = math.radians(config.fov_degrees) / 2.0
    distance = half / math.sin(half_fov)  # the cone from the camera touches the sphere
    return Camera(
        "perspective",
        config.render_size,
        distance * math.tan(half_fov),
        distance,
        math.tan(half_fov),
    )


def as_points(points: Tensor | np.ndarray) -> Tensor:
    """:func:`mvr3d.io.validate_points` (coordinates bounded too) for a tensor, kept on its
    own device: the values are checked by two reductions there, and copied to the host only
    to name the first bad point."""
    tensor = (
        torch.from_numpy(np.ascontiguousarray(points)) if isinstance(points, np.ndarray) else points
    )
    if not isinstance(tensor, Tensor):
        raise InputError(f"points must be a tensor or numpy array, got {type(points).__name__}")
    real = tensor.dtype != torch.bool and not tensor.is_complex()
    check_layout(tuple(tensor.shape), tensor.dtype, real)
    if not extremes_ok(float(tensor.amin()), float(tensor.amax()), bounded=True):
        check_values(tensor.detach().to("cpu", torch.float64).numpy(), bounded=True)  # raises
    return tensor


def normalise_clouds(
    clouds: list[Tensor], centres: list[Tensor | np.ndarray | None] | None = None, radius: float | None = None
) -> tuple[list[Tensor], Tensor, list[float], list[float]]:
    """Centre each cloud on its bounding-box centre and scale it by its bounding-sphere radius.

    Returns (float32 (N, 3) clouds inside the unit sphere, (clouds, 3) float64 centres, radii,
    point spacings in scaled units), with one host transfer for all clouds. Centring happens
    in float64 so that scans far from the origin keep their detail. Given ``centres`` /
    ``radius`` replace the fitted ones, so that scans of one class (a partial scan and its
    complete templates, say) are drawn at one common scale.
    """
    if radius is not None and not (math.isfinite(radius) and radius > 0):
        raise InputError(f"radius must be a positive number, got {radius}")
    centres = centres or [None] * len(clouds)
    placed, stats = [], []
    for points, centre in zip(clouds, centres, strict=True):
        low, high = points.amin(dim=0).double(), points.amax(dim=0).double()
        if centre is None:
            centre = (low + high) / 2.0
        else:
            centre = torch.as_tensor(centre, dtype=torch.float64, device=points.device).reshape(3)
        centred = points.double() - centre
        placed.append((centred, centre))
        fitted = centred.square().sum(dim=1).amax().sqrt()
        stats.append(torch.cat(((high - low).abs(), fitted[None], centre.abs().amax()[None])))
    # Every figure in one transfer: each transfer is a device sync.
    scaled, radii, spacings = [], [], []
    for (centred, _), row, points in zip(placed, torch.stack(stats).tolist(), clouds, strict=True):
        *extent, fitted, offset = row
        if fitted == 0.0 or max(extent) == 0.0:
            raise InputError("all points are identical: the cloud has no extent to render")
        if fitted <= 1e-12 * max(1.0, offset):
            raise InputError(
                f"the points span only {fitted:.3g} units, too little to render at their distance from the "
                "origin (below 1e-12 of it, or of 1 unit); rescale the scan to sensible units (e.g. millimetres)"
            )
        scale = fitted if radius is None else float(radius)
        scaled.append((centred / scale).float())
        radii.append(scale)
        spacings.append(spacing_from_extent([e / scale for e in extent], points.shape[0]))
    return scaled, torch.stack([centre for _, centre in placed]), radii, spacings


def spacing_from_extent(extent: list[float], count: int) -> float:
    """Point spacing of ``count`` points on a surface inside a box of this extent.

    Treats the cloud as a surface whose area is about half the bounding box's surface
    (exact for a plane and within 5 % for a sphere).
    """
    a, b, c = extent
    return math.sqrt((a * b + b * c + c * a) / count)


def project(scaled: Tensor, rotations: Tensor, camera: Camera) -> tuple[Tensor, Tensor]:
    """Rotate (N, 3) points by (V, 3, 3) poses and project them.

    Returns (pixel index ``row * size + col`` as int32 (V, N), depth float32 (V, N)).
    Rotation, scaling and offset are folded into one matrix product to save passes
    over the V*N elements.
    """
    views, half = rotations.shape[0], camera.size / 2.0
    if camera.projection == "orthographic":
        scale = half / camera.half_extent
        weights = [scale * rotations[:, 0], -scale * rotations[:, 1], -rotations[:, 2]]
        offsets = [half, half, camera.distance]
    else:
        weights = [rotations[:, 0], rotations[:, 1], -rotations[:, 2]]
        offsets = [0.0, 0.0, camera.distance]
    bias = torch.tensor(offsets, dtype=scaled.dtype, device=scaled.device).repeat_interleave(views)
    # (3, V, N): columns, rows, depths; each block contiguous.
    out = torch.addmm(bias[:, None], torch.cat(weights), scaled.T).view(3, views, -1)
    col, row, depth = out.unbind(0)
    if camera.projection == "perspective":
        factor = depth.reciprocal().mul_(half / camera.tan_half_fov)
        col.mul_(factor).add_(half)
        row.mul_(factor).neg_().add_(half)
    # Exact in float32 for size <= 4096 (indices < 2**24).
    col.clamp_(0, camera.size - 1).floor_()
    flat = row.clamp_(0, camera.size - 1).floor_().mul_(camera.size).add_(col)
    return flat.to(torch.int32), depth
