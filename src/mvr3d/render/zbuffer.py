"""Multi-view z-buffer rendering of point clouds (paper II-C; DESIGN.md step 2).

Every step is a batched tensor operation over all views of a chunk (no loops over
points or views), on whatever device the points live on. Per chunk of views:
rotate (one matmul) -> project -> z-buffer by scatter-min over (views, pixels) ->
occlusion by splatting each point over its footprint (a min-pool of the z-buffer) ->
visibility by gather + tolerance -> hole filling -> depth / shading images ->
area pooling to the network resolution.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mvr3d.errors import InputError
from mvr3d.render.camera import (
    Camera,
    as_points,
    make_camera,
    normalise_clouds,
    project,
)
from mvr3d.render.config import RenderConfig
from mvr3d.render.poses import check_rotations
from mvr3d.utils.kernels import gaussian_kernel

# Farthest surface stays brighter than the background so silhouettes survive.
FAR_LEVEL = 0.1
AMBIENT = 0.1
# From the viewer's upper left, so faces turned to the camera are all lit.
LIGHT = (-0.35, 0.35, 0.868)
MAX_FOOTPRINT_RADIUS = 16
DEFAULT_MAX_ELEMENTS = 2**24
IMAGE_ELEMENTS_PER_CHUNK = 2**26
_INDEX_LIMIT = 2**31 - 1
# Bit pattern of float32 +inf: positive floats order like their int32 bit patterns.
_INF_BITS = 0x7F800000


@dataclass(frozen=True)
class MultiView:
    """Rendered views of one cloud plus each point's pixel and visibility per view.

    ``pixel_index`` holds ``row * render_size + col`` as int32 (a quarter of the memory
    of (V, N, 2) int64); :attr:`pixels` expands it on demand.
    """

    images: Tensor  # (V, C, image_size, image_size) float32 in [0, 1]
    pixel_index: Tensor  # (V, N) int32, at render resolution
    visible: Tensor  # (V, N) bool
    render_size: int
    image_size: int
    centre: Tensor  # (3,) float64, the bounding-box centre the views rotate about
    scale: float  # bounding-sphere radius, in input units

    @property
    def num_views(self) -> int:
        return self.visible.shape[0]

    @property
    def num_points(self) -> int:
        return self.visible.shape[1]

    @property
    def pixels(self) -> Tensor:
        """(V, N, 2) int64 (row, col) at render resolution."""
        return decode_pixels(self.pixel_index, self.render_size)

    def image_pixels(self) -> Tensor:
        """(V, N, 2) int64 (row, col) at image resolution."""
        return self.pixels // (self.render_size // self.image_size)

    @property
    def seen(self) -> Tensor:
        """(N,) bool: visible in at least one view."""
        return self.visible.any(dim=0)

    @property
    def coverage(self) -> float:
        """Fraction of points visible in at least one view."""
        return float(self.seen.float().mean())


def decode_pixels(pixel_index: Tensor, render_size: int) -> Tensor:
    """``row * render_size + col`` indices (any shape) -> (..., 2) int64 (row, col)."""
    index = pixel_index.long()
    return torch.stack((index // render_size, index % render_size), dim=-1)


def render_views(
    points: Tensor | np.ndarray,
    rotations: Tensor | np.ndarray,
    config: RenderConfig | None = None,
    *,
    centre: Tensor | np.ndarray | None = None,
    radius: float | None = None,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> MultiView:
    """Render an (N, 3) cloud from the (V, 3, 3) poses; deterministic.

    By default the camera is fitted to the cloud's bounding sphere; ``centre`` and
    ``radius`` (input units) fix it instead, e.g. to the scale of a class's templates.

    Views are processed in chunks of ``max(1, max_elements // N)``, so peak memory stays
    near 30 bytes * ``max_elements`` (plus the outputs, 5 bytes per point and view)
    whatever V is.
    """
    centres = None if centre is None else [centre]
    return render_batch([points], rotations, config, centres=centres, radius=radius, max_elements=max_elements).scan(0)


@dataclass(frozen=True)
class RenderedBatch:
    """Several clouds rendered from the same poses in one pass.

    Points of all clouds are concatenated (cloud after cloud), so the per-point tensors
    are (V, sum of N); images are cloud-major, (clouds * V, C, h, w).
    """

    images: Tensor
    pixel_index: Tensor  # (V, sum N) int32, at render resolution
    visible: Tensor  # (V, sum N) bool
    counts: tuple[int, ...]
    render_size: int
    image_size: int
    centres: Tensor  # (clouds, 3) float64
    scales: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.counts)

    @property
    def num_views(self) -> int:
        return self.visible.shape[0]

    def cloud_of_point(self) -> Tensor:
        """(sum N,) int64: which cloud each concatenated point belongs to."""
        sizes = torch.tensor(self.counts, device=self.visible.device)
        return torch.repeat_interleave(torch.arange(len(self), device=sizes.device), sizes)

    def scan(self, index: int) -> MultiView:
        """One cloud's views (slices of the batch's tensors, no copies)."""
        start, views = sum(self.counts[:index]), self.num_views
        points = slice(start, start + self.counts[index])
        return MultiView(
            self.images[index * views : (index + 1) * views], self.pixel_index[:, points], self.visible[:, points],
            self.render_size, self.image_size, self.centres[index], self.scales[index],
        )


def render_batch(
    clouds: Sequence[Tensor | np.ndarray],
    rotations: Tensor | np.ndarray,
    config: RenderConfig | None = None,
    *,
    centres: Sequence[Tensor | np.ndarray | None] | None = None,
    radius: float | None = None,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
    compile: bool = False,
) -> RenderedBatch:
    """:func:`render_views` for several clouds at once: one z-buffer, one set of image
    operations and one host transfer for all of them, so a GPU stays busy with few launches.

    The output for each cloud is what :func:`render_views` gives for it alone. With
    ``compile``, the image operations run through ``torch.compile`` (fused kernels; the
    first call per image shape compiles).
    """
    config = config or RenderConfig()
    if not clouds:
        raise InputError("render_batch needs at least one point cloud")
    tensors = [as_points(points) for points in clouds]
    device = tensors[0].device
    tensors = [t.to(device) for t in tensors]
    poses = check_rotations(rotations).to(device)
    scaled, centre_rows, radii, spacings = normalise_clouds(tensors, None if centres is None else list(centres), radius)
    camera = make_camera(config)
    # Footprint radius of one point on screen, in pixels: about the point spacing, and at
    # least the 3x3 neighbourhood.
    footprints = [min(MAX_FOOTPRINT_RADIUS, max(1, round(s / camera.pixel_size))) for s in spacings]
    groups: dict[int, list[int]] = {}
    for index, footprint in enumerate(footprints):
        groups.setdefault(footprint, []).append(index)
    parts = {
        footprint: _render_group(
            [scaled[i] for i in members], poses, camera, config, footprint, max_elements, compile
        )
        for footprint, members in groups.items()
    }
    counts = tuple(t.shape[0] for t in tensors)
    if len(parts) == 1:
        images, index, visible = next(iter(parts.values()))
    else:
        images, index, visible = _in_cloud_order(parts, groups, counts, poses.shape[0])
    return RenderedBatch(images, index, visible, counts, config.render_size, config.image_size, centre_rows, tuple(radii))


def _in_cloud_order(
    parts: dict[int, tuple[Tensor, Tensor, Tensor]], groups: dict[int, list[int]], counts: tuple[int, ...], views: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Reassemble groups of clouds rendered separately into the clouds' own order."""
    pieces: list[tuple[Tensor, Tensor, Tensor] | None] = [None] * len(counts)
    for footprint, members in groups.items():
        images, index, visible = parts[footprint]
        start = 0
        for position, cloud in enumerate(members):
            points = slice(start, start + counts[cloud])
            pieces[cloud] = (images[position * views : (position + 1) * views], index[:, points], visible[:, points])
            start += counts[cloud]
    images, index, visible = zip(*pieces, strict=True)
    return torch.cat(images), torch.cat(index, dim=1), torch.cat(visible, dim=1)


def _render_group(
    scaled: list[Tensor], poses: Tensor, camera: Camera, config: RenderConfig, footprint: int, max_elements: int,
    compile: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """Clouds sharing a footprint: images (clouds * V, ...), pixel index and visibility (V, sum N)."""
    pixels = camera.size * camera.size
    if len(scaled) > 1 and len(scaled) * pixels > _INDEX_LIMIT:  # flat pixel indices are int32
        half = len(scaled) // 2
        first, second = (_render_group(part, poses, camera, config, footprint, max_elements, compile)
                         for part in (scaled[:half], scaled[half:]))
        return torch.cat((first[0], second[0])), torch.cat((first[1], second[1]), 1), torch.cat((first[2], second[2]), 1)
    points = torch.cat(scaled) if len(scaled) > 1 else scaled[0]
    sizes = torch.tensor([len(s) for s in scaled], device=points.device)
    cloud = torch.repeat_interleave(torch.arange(len(scaled), dtype=torch.int32, device=points.device), sizes)
    # A point counts as visible when nothing in its footprint is nearer by more than
    # depth_tolerance * (footprint half-diagonal): a surface sloping up to that
    # depth-per-screen-distance ratio (1.5: about 56 degrees) still sees itself.
    tolerance = config.depth_tolerance * math.sqrt(2.0) * footprint * camera.pixel_size
    # Bounded per-point work and image work (and int32 indices) per chunk of views.
    image_budget = min(_INDEX_LIMIT, max(IMAGE_ELEMENTS_PER_CHUNK, len(scaled) * pixels))
    per_chunk = max(1, min(max_elements // points.shape[0], image_budget // (len(scaled) * pixels)))
    chunks = [
        _render_chunk(points, cloud, len(scaled), poses[start : start + per_chunk], camera, config, tolerance, footprint,
                      _compiled_images() if compile else _images)
        for start in range(0, poses.shape[0], per_chunk)
    ]
    images, index, visible = zip(*chunks, strict=True)
    return torch.cat(images, dim=1).flatten(0, 1), torch.cat(index), torch.cat(visible)


def _render_chunk(
    scaled: Tensor,
    cloud: Tensor,
    clouds: int,
    poses: Tensor,
    camera: Camera,
    config: RenderConfig,
    tolerance: float,
    footprint: int,
    images_from: Callable[..., Tensor],
) -> tuple[Tensor, Tensor, Tensor]:
    """Images (clouds, chunk views, C, h, w), pixel index and visibility (chunk views, sum N)."""
    index, depth = project(scaled, poses, camera)
    views, pixels = poses.shape[0], camera.size * camera.size
    # Image of (cloud c, view v) is number c * views + v.
    offsets = torch.arange(views, dtype=torch.int32, device=index.device)[:, None] + cloud[None] * views
    flat = (index + offsets.mul_(pixels)).view(-1)
    del offsets
    zbuffer = _zbuffer(flat, depth, clouds * views, camera.size)
    # Splat every point over its footprint so that far points cannot show through the
    # gaps between near ones.
    front = _window_reduce(zbuffer, footprint, torch.minimum, math.inf)
    nearest = front.view(-1).index_select(0, flat).view_as(depth)
    visible = depth <= nearest.add_(tolerance)
    del flat, depth, nearest
    images = images_from(zbuffer, front, tolerance, footprint, camera, config)
    return images.unflatten(0, (clouds, views)), index, visible


def _zbuffer(flat: Tensor, depth: Tensor, views: int, size: int) -> Tensor:
    """Global pixel indices and depths -> (V, 1, size, size) nearest depth, inf where empty."""
    bits = torch.full((views * size * size,), _INF_BITS, dtype=torch.int32, device=flat.device)
    # Depths are positive, so an integer min over their bit patterns is the float min
    # (and faster). index_reduce_ takes int32 indices, saving an int64 copy.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="index_reduce", category=UserWarning)
        bits.index_reduce_(0, flat, depth.view(torch.int32).view(-1), "amin")
    return bits.view(torch.float32).view(views, 1, size, size)


def _window_reduce(x: Tensor, radius: int, op: Callable[..., Tensor], identity: float) -> Tensor:
    """Reduce over the (2 * radius + 1)^2 window around each pixel (outside = identity).

    Separable, and each 1-D pass doubles its window: O(log radius) full-image ops. Faster
    than max_pool2d on a CPU, and on an H100 too (benchmarks/window_reduce_cuda.md).
    """
    kernel = 2 * radius + 1
    for dim in (2, 3):
        pad_shape = list(x.shape)
        pad_shape[dim] = radius
        pad = torch.full(pad_shape, identity, dtype=x.dtype, device=x.device)
        run, width = torch.cat((pad, x, pad), dim=dim), 1
        while 2 * width <= kernel:  # run[i] = op(padded[i : i + width])
            length = run.shape[dim] - width
            run, width = op(run.narrow(dim, 0, length), run.narrow(dim, width, length)), 2 * width
        n = x.shape[dim]
        x = op(run.narrow(dim, 0, n), run.narrow(dim, kernel - width, n))
    return x


@functools.cache
def _compiled_images() -> Callable[..., Tensor]:
    return torch.compile(_images)


def _images(
    zbuffer: Tensor,
    front: Tensor,
    tolerance: float,
    footprint: int,
    camera: Camera,
    config: RenderConfig,
) -> Tensor:
    # Pixels whose nearest point is occluded by a neighbour's footprint are treated as
    # empty, like the points behind them.
    # (inf - inf is nan, which compares False: empty pixels stay empty.)
    occupied = torch.sub(zbuffer, front) <= tolerance
    surface = zbuffer  # owned by this chunk: updated in place
    if config.fill_holes:
        # Holes: empty pixels inside the morphological closing of the occupied mask. The
        # closing spans two point spacings because random sampling leaves gaps wider than
        # the mean spacing; holes take the nearest depth around them.
        radius = min(MAX_FOOTPRINT_RADIUS, 2 * footprint)
        empty = occupied.logical_not()
        grown = _window_reduce(occupied, radius, torch.logical_or, False)
        holes = _window_reduce(grown, radius, torch.logical_and, True).logical_and_(empty)
        nearest = _window_reduce(
            surface.masked_fill(empty, math.inf), radius, torch.minimum, math.inf
        )
        torch.where(holes, nearest, surface, out=surface)
        occupied = occupied.logical_or_(holes)
    # Area pooling: mean depth of the covered sub-pixels plus the covered fraction.
    factor = config.pool_factor
    coverage = F.avg_pool2d(occupied.float(), factor) if factor > 1 else occupied.float()
    total = surface.masked_fill_(occupied.logical_not(), 0.0)
    total = F.avg_pool2d(total, factor) if factor > 1 else total
    mask = coverage > 0
    depth = torch.where(mask, total / coverage.clamp_min(1e-12), 0.0)
    channels = []
    if config.content in ("depth", "depth+shading"):
        channels.append(_depth_image(depth, mask, camera, config))
    if config.content in ("shading", "depth+shading"):
        channels.append(_shading_image(depth, mask, camera, factor, config.shading_sigma))
    image = torch.cat(channels, dim=1) if len(channels) > 1 else channels[0]
    # Partly covered pixels blend with the background (anti-aliased silhouettes).
    return (image * coverage + config.background * (1.0 - coverage)).clamp_(0.0, 1.0)


def _depth_image(depth: Tensor, mask: Tensor, camera: Camera, config: RenderConfig) -> Tensor:
    """Near surface -> 1, far surface -> FAR_LEVEL."""
    if config.depth_range in ("view", "near"):
        near = torch.where(mask, depth, math.inf).amin(dim=(1, 2, 3), keepdim=True)
        far = torch.where(mask, depth, -math.inf).amax(dim=(1, 2, 3), keepdim=True)
        near, far = near.nan_to_num(0.0, 0.0, 0.0), far.nan_to_num(0.0, 0.0, 0.0)
        if config.depth_range == "near":
            near_bound, far_bound = camera.depth_bounds
            far = near + (far_bound - near_bound)
    else:
        near_bound, far_bound = camera.depth_bounds
        near = torch.tensor(near_bound, device=depth.device)
        far = torch.tensor(far_bound, device=depth.device)
    span = far - near
    # A surface facing the camera squarely has no depth range: show it as near.
    relative = torch.where(span > 1e-9, (far - depth) / span.clamp_min(1e-9), 1.0)
    return (FAR_LEVEL + (1.0 - FAR_LEVEL) * relative).clamp_(0.0, 1.0)


def _shading_image(depth: Tensor, mask: Tensor, camera: Camera, factor: int, sigma: float = 0.0) -> Tensor:
    """Lambert shading with normals from screen-space depth gradients (no neighbour search).

    With ``sigma`` > 0 the gradients come from a depth smoothed over the surface's own
    pixels: scanner noise of a few tenths of a percent of the object is otherwise as
    steep, pixel to pixel, as a defect's flank, and it differs from scan to scan.
    """
    if sigma > 0:
        depth = _masked_blur(depth, mask, sigma)
    if camera.projection == "orthographic":
        pixel: float | Tensor = camera.pixel_size * factor
    else:
        pixel = (depth * (2.0 * camera.tan_half_fov * factor / camera.size)).clamp_min(1e-12)
    # Height toward the camera is -depth; columns follow +x, rows follow -y.
    nx = _difference(depth, mask, dim=3) / pixel
    ny = _difference(depth, mask, dim=2).neg_() / pixel
    lx, ly, lz = (c / math.sqrt(sum(v * v for v in LIGHT)) for c in LIGHT)
    lambert = (nx * lx + ny * ly + lz) / torch.sqrt(nx * nx + ny * ny + 1.0)
    return AMBIENT + (1.0 - AMBIENT) * lambert.clamp_(0.0, 1.0)


def _masked_blur(depth: Tensor, mask: Tensor, sigma: float) -> Tensor:
    """Gaussian blur of ``depth`` that averages covered pixels only (normalised convolution)."""
    radius = max(1, math.ceil(3.0 * sigma))
    kernel = gaussian_kernel(sigma, radius, depth.device, depth.dtype)
    weight = mask.to(depth.dtype)
    # Depth relative to each view's mean keeps the weighted sums well inside float32.
    offset = (depth * weight).sum(dim=(2, 3), keepdim=True) / weight.sum(dim=(2, 3), keepdim=True).clamp_min(1.0)
    stacked = torch.cat([(depth - offset) * weight, weight], dim=1)
    channels = stacked.shape[1]
    rows = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    cols = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    blurred = F.conv2d(F.conv2d(stacked, rows, padding=(radius, 0), groups=channels), cols,
                       padding=(0, radius), groups=channels)
    total, covered = blurred.split(depth.shape[1], dim=1)
    smooth = total / covered.clamp_min(1e-6) + offset
    return torch.where(mask, smooth, depth)


def _difference(depth: Tensor, mask: Tensor, dim: int) -> Tensor:
    """Central difference per pixel, one-sided at surface borders, 0 on isolated pixels."""
    length = depth.shape[dim]
    pair = mask.narrow(dim, 1, length - 1) & mask.narrow(dim, 0, length - 1)
    step = (depth.narrow(dim, 1, length - 1) - depth.narrow(dim, 0, length - 1)) * pair
    total, count = torch.zeros_like(depth), torch.zeros_like(depth)
    total.narrow(dim, 0, length - 1).add_(step)
    total.narrow(dim, 1, length - 1).add_(step)
    count.narrow(dim, 0, length - 1).add_(pair)
    count.narrow(dim, 1, length - 1).add_(pair)
    return total / count.clamp_min_(1.0)


def to_rgb(images: Tensor) -> Tensor:
    """(V, C, h, w) images in [0, 1] -> (V, 3, h, w) float32 RGB in [0, 1].

    One channel is replicated to grey RGB; depth+shading becomes (depth, shading, depth),
    so both signals reach the backbone and the mapping is symmetric in red/blue. The
    backbone applies its own input normalisation (``models.mvr.MVRNet``).
    """
    if images.ndim != 4 or images.shape[1] not in (1, 2, 3):
        raise InputError(
            f"images must have shape (V, C, h, w) with C in 1..3, got {tuple(images.shape)}"
        )
    if images.shape[1] == 1:
        return images.expand(-1, 3, -1, -1).float()
    if images.shape[1] == 2:
        return images[:, [0, 1, 0]].float()
    return images.float()
