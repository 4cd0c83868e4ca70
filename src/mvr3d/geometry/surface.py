"""Distance from points to a reference surface known only as noisy samples.

The nearest-sample distance of a normal point is not zero even when it lies exactly on
the part: it holds the reference's sampling gaps and its scanner noise. Here every
reference sample carries the plane fitted to its ``k`` nearest samples (centroid and
PCA normal), and a point's deviation is its distance along that normal: sampling gaps
drop out and the reference's noise is averaged over ``k`` samples.

Several complete templates of one part are fused into one reference: each is registered
to the first (the template aligner) and the union, voxel-averaged, is denser and less
noisy than any single template.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from mvr3d.geometry.density import point_hash, point_uniforms
from mvr3d.geometry.joined import cloud_numbers
from mvr3d.geometry.neighbours import NeighbourIndex, centre_neighbourhoods
from mvr3d.geometry.voxels import bounding_diagonal, voxel_downsample

PLANE_NEIGHBOURS = 16
# Voxel of the fused reference as a share of the part's diagonal: below the scanner noise
# of one scan (0.1-0.3 %), so averaging within a voxel removes noise, not shape.
FUSED_VOXEL = 0.0015
# Anchored smoothing: never fewer anchors than this (small scans stay exact), and each
# point blends this many nearest anchors.
MIN_ANCHORS = 4096
ANCHOR_BLEND = 4
# Neighbours over which local_noise measures a scan's noise about its local mean.
NOISE_NEIGHBOURS = 16
# Most neighbours a smoothing neighbourhood takes from a cell grid; more by brute force.
GRID_NEIGHBOURS = 32
# Open edges of a reference (where its templates' coverage stops): a sample's neighbourhood
# of OPEN_EDGE_NEIGHBOURS samples is lopsided when the in-plane offset of their centroid is
# over OPEN_EDGE_STRENGTH of their mean distance (a full disc gives about 0, a half disc
# 0.64; the fused references of seed 3 have a median of 0.16 and a 90th percentile of 0.33).
OPEN_EDGE_NEIGHBOURS = 32
OPEN_EDGE_STRENGTH = 0.45


class OpenEdges:
    """Where a reference surface's samples stop: each sample's lopsidedness (``strength``)
    and the unit in-plane direction away from its neighbours (``outward``), with the
    reference's sample ``spacing`` (median distance to the nearest other sample)."""

    def __init__(self, strength: Tensor, outward: Tensor, spacing: float) -> None:
        self.strength, self.outward, self.spacing = strength, outward, spacing

    def beyond(self, query: Tensor, points: Tensor, normals: Tensor, nearest: Tensor, reach: float) -> Tensor:
        """True for each query point lying over ``reach`` spacings outward past an open edge
        of the reference, in the plane of its nearest sample (``nearest``; ``points`` and
        ``normals``: the reference's samples and plane normals)."""
        offset = query.to(points.device, points.dtype) - points[nearest]
        normal = normals[nearest]
        lateral = offset - (offset * normal).sum(dim=1, keepdim=True) * normal
        outward = (lateral * self.outward[nearest]).sum(dim=1)
        return (self.strength[nearest] > OPEN_EDGE_STRENGTH) & (outward > reach * self.spacing)


def find_open_edges(index: NeighbourIndex, normals: Tensor, neighbours: int = OPEN_EDGE_NEIGHBOURS,
                    chunk: int = 65536) -> OpenEdges:
    """:class:`OpenEdges` of the indexed reference samples with plane ``normals``."""
    points = index.reference
    strength = torch.empty(len(points), dtype=points.dtype, device=points.device)
    outward, closest = torch.empty_like(points), torch.empty(len(points), dtype=points.dtype, device=points.device)
    for start in range(0, len(points), chunk):
        rows = slice(start, start + chunk)
        distances, near = index.query(points[rows], neighbours)
        distances, near = distances.to(points.device, points.dtype), near.to(points.device)
        towards = points[near].mean(dim=1) - points[rows]
        towards = towards - (towards * normals[rows]).sum(dim=1, keepdim=True) * normals[rows]
        length = towards.norm(dim=1)
        strength[rows] = length / distances[:, 1:].mean(dim=1).clamp_min(torch.finfo(points.dtype).tiny)
        outward[rows] = -towards / length.clamp_min(torch.finfo(points.dtype).tiny)[:, None]
        closest[rows] = distances[:, 1] if distances.shape[1] > 1 else 0.0
    return OpenEdges(strength, outward, float(closest.median()))


class SurfaceReference:
    """Reference samples with a local plane each; distances of query points to them."""

    def __init__(self, points: np.ndarray | Tensor, neighbours: int = PLANE_NEIGHBOURS,
                 device: str | torch.device = "cpu") -> None:
        reference = torch.as_tensor(np.asarray(points, dtype=np.float64) if not isinstance(points, Tensor) else points,
                                    dtype=torch.float64, device=device)
        self.index = NeighbourIndex(reference)
        self.centroids, self.normals = local_planes(self.index, neighbours)
        self.transforms: list[tuple[np.ndarray, np.ndarray]] = []  # template j -> this frame
        self._open_edges: OpenEdges | None = None

    @property
    def open_edges(self) -> OpenEdges:
        """Where the samples stop (:class:`OpenEdges`), found on first use."""
        if self._open_edges is None:
            self._open_edges = find_open_edges(self.index, self.normals)
        return self._open_edges

    def beyond_edges(self, query: Tensor, nearest: Tensor, reach: float) -> Tensor:
        """True for each query point (its nearest sample's index in ``nearest``) lying over
        ``reach`` sample spacings past an open edge of the reference: on a part of the
        object that no template covered, where its distance to the reference says nothing."""
        return self.open_edges.beyond(query, self.points, self.normals, nearest.to(self.points.device), reach)

    @property
    def points(self) -> Tensor:
        return self.index.reference

    def distance(self, query: np.ndarray | Tensor) -> np.ndarray | Tensor:
        """Unsigned distance of each query point to the local plane of its nearest sample
        (float32; a Tensor on the reference's device for a Tensor query, else numpy)."""
        as_numpy = not isinstance(query, Tensor)
        gap = self.signed_distance(torch.as_tensor(query, dtype=torch.float64))[0].abs().float()
        return gap.cpu().numpy() if as_numpy else gap

    def signed_distance(self, query: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Float64 offset of each query point along its nearest sample's plane normal, that
        normal (N, 3) and the nearest sample's index, on the reference's device. PCA normals
        have no consistent orientation, so signs only compare between points sharing a
        normal's direction."""
        query = query.to(self.points.device, torch.float64)
        nearest = self.nearest(query)
        normals = self.normals[nearest]
        return ((query - self.centroids[nearest]) * normals).sum(dim=1), normals, nearest

    def nearest(self, query: np.ndarray | Tensor) -> Tensor:
        """Index of each query point's nearest reference sample, on the reference's device."""
        query = torch.as_tensor(query).to(self.points.device, torch.float64)
        return self.index.query(query)[1][:, 0].to(self.points.device)

    def from_template(self, template: int, points: np.ndarray) -> np.ndarray:
        """Points given in template ``template``'s frame, moved into this reference's frame."""
        if not self.transforms:
            return points
        rotation, shift = self.transforms[template]
        return points @ rotation.T + shift


def smoothed_offset(points: Tensor, signed: Tensor, normals: Tensor, neighbours: int,
                    anchors: Tensor | None = None, sources: Tensor | None = None) -> Tensor:
    """|mean signed offset| over each point's ``neighbours`` nearest points (itself included).

    Scanner noise moves neighbouring points independently and averages out over the
    neighbourhood; a dent or bump moves them together and stays. Each neighbour's offset is
    signed against the point's own normal, since PCA normals are oriented at random.

    With ``anchors`` (indices, :func:`anchor_points`) the mean is taken around the anchors
    only and every point gets the inverse-distance mean of its ``ANCHOR_BLEND`` nearest
    anchors: neighbourhoods of hundreds of points overlap so much that this changes little,
    and it divides the cost of the k-NN search (the method's largest) by the stride.
    With ``sources`` (indices, e.g. :func:`~mvr3d.geometry.density.thinned_to_spacing`) the
    neighbours are taken from those points only.
    """
    return smoothed_offsets([points], [signed], [normals], neighbours, [anchors], [sources])[0]


def smoothed_offsets(points: Sequence[Tensor], signed: Sequence[Tensor], normals: Sequence[Tensor], neighbours: int,
                     anchors: Sequence[Tensor | None], sources: Sequence[Tensor | None] | None = None) -> list[Tensor]:
    """:func:`smoothed_offset` of several scans (one list entry each), searched together: one
    grouped index finds every scan's neighbourhoods, another every point's nearest anchors."""
    if neighbours <= 1 or not points:
        return [offset.abs() for offset in signed]
    device = points[0].device
    sources = [None] * len(points) if sources is None else sources
    # A scan without anchors (small: exact smoothing) has all its points as centres.
    centres = [torch.arange(len(cloud), device=device) if chosen is None or len(chosen) == len(cloud)
               else chosen.to(device) for cloud, chosen in zip(points, anchors, strict=True)]
    pools = [torch.arange(len(cloud), device=device) if chosen is None else chosen.to(device)
             for cloud, chosen in zip(points, sources, strict=True)]
    sizes = [len(pool) for pool in pools]
    around: list[Tensor | None] = [None] * len(points)
    # A scan smaller than the neighbourhood takes all its points (its own k): searched alone.
    together = [scan for scan, size in enumerate(sizes) if size >= neighbours]
    alone = [[scan] for scan, size in enumerate(sizes) if 0 < size < neighbours]
    for scan in (scan for scan, size in enumerate(sizes) if size == 0):
        around[scan] = signed[scan].abs()
    for group in [together, *alone]:
        if group:
            found = _neighbourhoods([points[i] for i in group], [signed[i] for i in group], [normals[i] for i in group],
                                    neighbours, [centres[i] for i in group], [pools[i] for i in group])
            for scan, value in zip(group, found, strict=True):
                around[scan] = value
    anchored = [scan for scan, (cloud, chosen) in enumerate(zip(points, centres, strict=True)) if len(chosen) < len(cloud)]
    if anchored:
        blended = _blend_anchors([points[scan] for scan in anchored], [centres[scan] for scan in anchored],
                                 [around[scan] for scan in anchored])
        for scan, value in zip(anchored, blended, strict=True):
            around[scan] = value
    return around


def _neighbourhoods(points: list[Tensor], signed: list[Tensor], normals: list[Tensor], neighbours: int,
                    centres: list[Tensor], pools: list[Tensor]) -> list[Tensor]:
    """:func:`neighbourhood_offset` around each scan's ``centres`` (indices) over its points
    ``pools`` (indices), all scans in one grouped index."""
    device = points[0].device
    # Hundreds of neighbours come faster by brute force than from a coarse grid's sorted
    # candidate lists (one H100: 14-16 vs 20-21 ms a scan, benchmarks/template_profile.py).
    index = NeighbourIndex(torch.cat([cloud[pool] for cloud, pool in zip(points, pools, strict=True)]),
                           grid=None if neighbours <= GRID_NEIGHBOURS else False, sizes=[len(pool) for pool in pools])
    pooled = [(value[pool.to(value.device)], normal[pool.to(normal.device)])
              for value, normal, pool in zip(signed, normals, pools, strict=True)]
    centre_normals = torch.cat([normal[chosen.to(normal.device)] for normal, chosen in zip(normals, centres, strict=True)])
    around = neighbourhood_offset(index, torch.cat([cloud[chosen] for cloud, chosen in zip(points, centres, strict=True)]),
                                  torch.cat([value for value, _ in pooled]), torch.cat([normal for _, normal in pooled]),
                                  neighbours, centre_normals=centre_normals,
                                  groups=cloud_numbers([len(chosen) for chosen in centres], device))
    return list(around.split([len(chosen) for chosen in centres]))


def _blend_anchors(clouds: list[Tensor], anchors: list[Tensor], around: list[Tensor]) -> list[Tensor]:
    """Each point's inverse-distance mean of its ``ANCHOR_BLEND`` nearest anchors' values."""
    sizes = [len(cloud) for cloud in clouds]
    device = clouds[0].device
    # Every point asks for its few nearest anchors: a cell grid answers that on an accelerator.
    index = NeighbourIndex(torch.cat([cloud[chosen] for cloud, chosen in zip(clouds, anchors, strict=True)]), grid=True,
                           sizes=[len(chosen) for chosen in anchors])
    groups = cloud_numbers(sizes, device)
    distances, nearest = index.query(torch.cat(clouds), ANCHOR_BLEND, groups=groups)
    distances = distances.to(device, torch.float64)
    # A point that is an anchor takes (almost) its own value; the floor (per scan) keeps 1/d finite.
    farthest = torch.zeros(len(clouds), dtype=torch.float64, device=device).index_add_(0, groups, distances[:, -1])
    floor = 1e-3 * farthest / torch.as_tensor(sizes, dtype=torch.float64, device=device)
    weights = 1.0 / (distances + floor[groups, None] + torch.finfo(torch.float64).tiny)
    values = (torch.cat(around)[nearest.to(device)] * weights).sum(dim=1) / weights.sum(dim=1)
    return list(values.split(sizes))


def local_noise(points: Sequence[Tensor], signed: Sequence[Tensor], normals: Sequence[Tensor],
                centres: Sequence[Tensor | None], neighbours: int = NOISE_NEIGHBOURS) -> Tensor:
    """Scanner noise of each scan (one value per scan, a standard deviation along the surface
    normal): the spread of its points' ``signed`` offsets about their local mean, over the
    ``neighbours`` nearest points of each of its ``centres`` (indices; None: every point),
    the median variance over the centres. A shape the templates do not match moves a small
    neighbourhood together, so it leaves this spread alone; the spread of the smoothed
    deviations over the whole scan does not, and it changes with which side was scanned.
    Neighbours are found among ``points`` as given: on noisy points they tend to be points
    of like offset, and the value falls short of the noise as the noise nears the sample
    spacing (points moved onto the surface give the noise itself). A scan of fewer than
    ``neighbours`` points is measured over all of its points (alone, so that it does not
    shrink the others' neighbourhoods); one of a single point has no spread (0)."""
    device = signed[0].device
    noise = torch.zeros(len(points), dtype=torch.float64, device=device)
    together = [scan for scan, cloud in enumerate(points) if len(cloud) >= neighbours]
    for group in [together, *([scan] for scan, cloud in enumerate(points) if len(cloud) < neighbours)]:
        if group:
            noise[group] = _local_noise([points[i] for i in group], [signed[i] for i in group],
                                        [normals[i] for i in group], [centres[i] for i in group], neighbours)
    return noise


def _local_noise(points: list[Tensor], signed: list[Tensor], normals: list[Tensor], centres: list[Tensor | None],
                 neighbours: int) -> Tensor:
    """:func:`local_noise` of scans searched in one grouped index."""
    device = signed[0].device
    _, rows, counts, neighbourhoods = centre_neighbourhoods(points, centres, neighbours)
    rows = rows.to(device)
    all_signed, all_normals = torch.cat(signed), torch.cat(normals).to(device)
    variance = torch.zeros(len(rows), dtype=torch.float64, device=device)
    for part, near in neighbourhoods:
        near = near.to(device)
        if near.shape[1] > 1:
            aligned = torch.sign((all_normals[near] * all_normals[rows[part], None]).sum(dim=2))
            variance[part] = (all_signed[near] * aligned).double().var(dim=1)
    return torch.stack([piece.median().sqrt() for piece in variance.split(counts)])


def anchor_points(points: np.ndarray, stride: int, seed: int = 0) -> Tensor | None:
    """Indices of about one point in ``stride`` (never fewer than ``MIN_ANCHORS``; None for
    all), picked by a hash of each point's coordinates: pseudo-random and spread like the
    scan, yet the same points whatever order the scan lists them in."""
    stride = min(stride, len(points) // MIN_ANCHORS)
    if stride <= 1:
        return None
    return torch.from_numpy(np.flatnonzero(point_hash(points, seed) % np.uint64(stride) == 0))


def neighbourhood_offset(index: NeighbourIndex, centres: Tensor, signed: Tensor, normals: Tensor, neighbours: int,
                         centre_normals: Tensor | None = None, groups: Tensor | None = None) -> Tensor:
    """|mean of ``signed`` over each centre's ``neighbours`` nearest indexed points|, each
    signed against the centre's normal (``normals`` itself when the centres are the points;
    ``groups``: each centre's cloud in a grouped index)."""
    centre_normals = normals if centre_normals is None else centre_normals
    out = torch.empty(len(centres), dtype=signed.dtype, device=signed.device)
    rows = max(1, 2**22 // min(neighbours, len(index.reference)))
    for start in range(0, len(centres), rows):
        part = slice(start, start + rows)
        near = index.query(centres[part], neighbours, groups=None if groups is None else groups[part])[1].to(signed.device)
        aligned = torch.sign((normals[near] * centre_normals[part, None]).sum(dim=2))
        out[part] = (signed[near] * aligned).mean(dim=1).abs()
    return out


def project_to_planes(points: Tensor, neighbours: int) -> Tensor:
    """Each point moved along its local plane's normal onto that plane (centroid and PCA
    normal of its ``neighbours`` nearest points): scanner noise shrinks about as
    1/sqrt(neighbours), while shapes wider than the neighbourhood stay."""
    centroids, normals = local_planes(NeighbourIndex(points.double()), neighbours)
    offset = ((points.double() - centroids) * normals).sum(dim=1, keepdim=True)
    return (points.double() - offset * normals).to(points.dtype)


def shaped_like(points: Tensor, reference: Tensor, smoothing: int, neighbours: int = PLANE_NEIGHBOURS) -> Tensor:
    """``points`` with the reference's shape: each point moved along the normal of the plane
    through its ``neighbours`` nearest reference points, by the mean offset from those planes
    of its ``smoothing`` nearest points (signed against its own normal, as PCA normals are
    oriented at random). A dent or bump moves a neighbourhood together and is taken out;
    scanner noise moves points apart and stays, so the result keeps the points' sampling and
    noise, and differs from them only where their shape does."""
    points64, normals, offsets, around, aligned = _offsets_about_reference(points, reference, smoothing, neighbours)
    broad = (offsets[around] * aligned).mean(dim=1)
    return (points64 - broad[:, None] * normals).to(points.dtype)


def normal_twin(points: Tensor, reference: Tensor, smoothing: int, seed: int = 0,
                neighbours: int = PLANE_NEIGHBOURS, keys: np.ndarray | None = None) -> Tensor:
    """A normal scan like ``points``: each point moved onto the reference's local plane, then
    off it by the noise (offset less its ``smoothing``-point mean, as in :func:`shaped_like`) of
    a point drawn at random among its ``smoothing`` nearest. Same sampling, density and local
    noise level as the scan, the reference's shape, and a fresh arrangement of the noise: what a
    normal part scanned the same way would give (a null to compare the scan's errors with).
    The draw hangs on each point's coordinates and ``seed``, not on the order of the points;
    ``keys`` (one row per point) stands in for the coordinates, e.g. the scan as read, since
    a registered scan's coordinates move in their last bits with the order of its points."""
    points64, normals, offsets, around, aligned = _offsets_about_reference(points, reference, smoothing, neighbours)
    noise = offsets - (offsets[around] * aligned).mean(dim=1)
    keyed = points64.cpu().numpy() if keys is None else np.asarray(keys)
    uniforms = torch.from_numpy(point_uniforms(keyed, seed)).to(around.device)
    pick = (uniforms * around.shape[1]).long().clamp_max(around.shape[1] - 1)
    rows = torch.arange(len(points64), device=around.device)
    lent = noise[around[rows, pick]] * aligned[rows, pick]
    return (points64 - (offsets - lent)[:, None] * normals).to(points.dtype)


def _offsets_about_reference(points: Tensor, reference: Tensor, smoothing: int, neighbours: int
                             ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Each point (float64) with the normal of the plane through its ``neighbours`` nearest
    reference points, its offset from that plane, its ``smoothing`` nearest points (as moved
    onto the planes) and the sign that turns their normals to its own."""
    points64, reference64 = points.double(), reference.double()
    near = NeighbourIndex(reference64).query(points64, min(neighbours, len(reference64)))[1].to(points.device)
    patch = reference64[near]
    centre = patch.mean(dim=1)
    spread = patch - centre[:, None]
    normals = smallest_eigenvector(spread.transpose(1, 2) @ spread)
    offsets = ((points64 - centre) * normals).sum(dim=1)
    # Neighbours among the points moved onto the planes: among noisy points, points of like
    # offset lie closer, and a mean over them would keep part of the noise.
    flat = points64 - offsets[:, None] * normals
    around = NeighbourIndex(flat).query(flat, min(smoothing, len(points64)))[1].to(points.device)
    aligned = torch.sign((normals[around] * normals[:, None]).sum(dim=2))
    return points64, normals, offsets, around, aligned


def local_planes(index: NeighbourIndex, neighbours: int, chunk: int = 65536) -> tuple[Tensor, Tensor]:
    """Centroid and unit PCA normal of each reference point's ``neighbours`` nearest points."""
    points = index.reference
    centroids, normals = torch.empty_like(points), torch.empty_like(points)
    for start in range(0, len(points), chunk):
        rows = slice(start, start + chunk)
        near = index.query(points[rows], neighbours)[1].to(points.device)
        patch = points[near]  # (c, k, 3)
        centre = patch.mean(dim=1)
        spread = patch - centre[:, None]
        covariance = spread.transpose(1, 2) @ spread
        normals[rows] = smallest_eigenvector(covariance)
        centroids[rows] = centre
    return centroids, normals


def smallest_eigenvector(covariance: Tensor) -> Tensor:
    """(c, 3) unit eigenvectors of the smallest eigenvalue of (c, 3, 3) symmetric matrices.

    Solved on the CPU: batched float64 ``eigh`` on CUDA fails with CUSOLVER internal errors
    for large batches (torch 2.11, H200), and 3x3 problems gain nothing from a GPU.
    """
    return torch.linalg.eigh(covariance.cpu())[1][:, :, 0].to(covariance.device)


Register = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def fuse_templates(templates: list[np.ndarray], register: Register, voxel_ratio: float = FUSED_VOXEL,
                   neighbours: int = PLANE_NEIGHBOURS, device: str | torch.device = "cpu") -> SurfaceReference:
    """One reference from all templates: ``register(points)`` gives the (R, t) taking a
    template onto the first (``points @ R.T + t``); the union is voxel-averaged."""
    first = np.asarray(templates[0], dtype=np.float64)
    transforms = [(np.eye(3), np.zeros(3))]
    transforms += [register(np.asarray(template, dtype=np.float64)) for template in templates[1:]]
    moved = [np.asarray(template, dtype=np.float64) @ rotation.T + shift
             for template, (rotation, shift) in zip(templates, transforms, strict=True)]
    reference = fuse_placed(moved, voxel_ratio * bounding_diagonal(first), neighbours, device)
    reference.transforms = transforms
    return reference


def fuse_placed(templates: list[np.ndarray], voxel: float, neighbours: int = PLANE_NEIGHBOURS,
                device: str | torch.device = "cpu") -> SurfaceReference:
    """One reference from templates already in one frame: their union, averaged in voxels of
    side ``voxel``."""
    fused = voxel_downsample(np.concatenate(templates), voxel)[0]
    return SurfaceReference(fused, neighbours, device)
