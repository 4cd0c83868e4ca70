"""A registered scan's pose checked against turns of itself about the part's principal axes.

Parts with near rotational symmetry (a cycloidal disc's lobes, a gear's teeth, a flange's
bolt circle) fit a template almost as well one lobe over as in place: the pose search and
ICP settle in the wrong lobe's basin, and only a few features (holes, a key) tell the two
apart. On the development build of cycloidal (seed 2, 20 good scans of 100 k points), 9 of
20 good scans were registered turned about the disc's axis (by 9.4, 18.9 or 180 degrees, the
lobe pitch being 9.47), and those 9 held its 8 highest good-scan scores; ICP started in the
true pose stayed there with a lower capped residual than the chosen pose every time. The
basins are narrow (starts 3 degrees off fell back into the neighbouring lobe), so the sweep
takes small steps and repeats from the best pose while that pose changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from mvr3d.geometry.icp import icp_batch, pad_stack
from mvr3d.geometry.surface import SurfaceReference
from mvr3d.geometry.voxels import voxel_downsample

# Turns of up to this many degrees each way (two lobe pitches of cycloidal), and a half turn.
SWEEP_SPAN_DEG = 16.0
# Sweeps from the best pose while it keeps changing, at most this many.
SWEEP_ROUNDS = 3
# Points of each scan (after a voxel grid evens its density) that the candidates fit.
SWEEP_POINTS = 4000
SWEEP_ITERATIONS = 20

Motion = tuple[np.ndarray, np.ndarray]


def sweep_angles(step_deg: float, span_deg: float = SWEEP_SPAN_DEG) -> list[float]:
    """Turns tried about each axis: multiples of ``step_deg`` up to ``span_deg`` each way, and 180."""
    if not (np.isfinite(step_deg) and step_deg > 0):
        raise ValueError(f"a sweep needs a positive step in degrees, got {step_deg}")
    steps = np.arange(step_deg, span_deg + 1e-9, step_deg)
    return [*(-steps[::-1]).tolist(), *steps.tolist(), 180.0]


def principal_axes(points: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Centroid (3,) and principal axes (3, 3), one per row, of a reference's points."""
    cloud = points.double().cpu().numpy()
    centre = cloud.mean(axis=0)
    return centre, np.linalg.svd(cloud - centre, full_matrices=False)[2]


def swept_motions(clouds: Sequence[np.ndarray], motions: Sequence[Motion], reference: SurfaceReference,
                  step_deg: float, voxel: float, trim: float, cap: float, seed: int = 0) -> list[Motion]:
    """Each scan's motion (R, t) into ``reference``'s frame, replaced by the best of it and of
    it turned about the reference's principal axes (:func:`sweep_angles`), every candidate
    refined by point-to-plane ICP on the reference and ranked by its mean of min(distance,
    ``cap``) over the scan's ``SWEEP_POINTS`` points."""
    if not clouds:
        return []
    device = reference.points.device
    centre, axes = principal_axes(reference.points)
    turns = [np.eye(3)] + [Rotation.from_rotvec(np.radians(angle) * axis).as_matrix()
                           for axis in axes for angle in sweep_angles(step_deg)]
    sources, valid = pad_stack([_sample(cloud, voxel, seed) for cloud in clouds], device)
    current = [(np.asarray(rotation, dtype=np.float64), np.asarray(shift, dtype=np.float64)) for rotation, shift in motions]
    moving = list(range(len(clouds)))
    for _ in range(SWEEP_ROUNDS):
        if not moving:
            break
        starts = [(turn @ current[scan][0], (current[scan][1] - centre) @ turn.T + centre) for scan in moving for turn in turns]
        rows = torch.as_tensor(moving, device=device).repeat_interleave(len(turns))
        rotations, shifts, residual = icp_batch(
            sources[rows], reference.index, torch.as_tensor(np.stack([r for r, _ in starts]), device=device),
            torch.as_tensor(np.stack([t for _, t in starts]), device=device), SWEEP_ITERATIONS, trim,
            reference.normals, cap=cap, valid=valid[rows])
        best = residual.view(len(moving), len(turns)).argmin(dim=1).tolist()
        chosen = [number * len(turns) + pick for number, pick in enumerate(best)]
        rotations, shifts = rotations[chosen].cpu().numpy(), shifts[chosen].cpu().numpy()
        for number, scan in enumerate(moving):
            current[scan] = (rotations[number], shifts[number])
        moving = [scan for scan, pick in zip(moving, best, strict=True) if pick != 0]
    return current


def _sample(cloud: np.ndarray, voxel: float, seed: int) -> np.ndarray:
    """Up to ``SWEEP_POINTS`` of a scan's voxel centroids, drawn by a generator seeded alike
    for every scan (its pose does not depend on the batch)."""
    sampled = voxel_downsample(np.asarray(cloud, dtype=np.float64), voxel)[0]
    if len(sampled) <= SWEEP_POINTS:
        return sampled
    return sampled[np.sort(np.random.default_rng(seed).choice(len(sampled), SWEEP_POINTS, replace=False))]
