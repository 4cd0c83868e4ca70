"""Pose sweep (geometry/sweep.py): a scan registered one lobe over on a part with near
rotational symmetry is turned back into place, and the template method's ``pose_sweep``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from checkpoints import assert_param_saves_and_old_checkpoints_get
from mvr3d.baselines.template import TemplateDetector
from mvr3d.errors import InputError
from mvr3d.geometry.icp import icp_batch, pad_stack
from mvr3d.geometry.surface import SurfaceReference
from mvr3d.geometry.sweep import sweep_angles, swept_motions

LOBES = 36  # a lobe pitch of 10 degrees, inside the sweep's span
VOXEL = 0.1


def lobed_disc(n: int, seed: int) -> np.ndarray:
    """A disc of radius 10 +- 0.4 with LOBES lobes round its rim, 3 thick, and one hole
    through its top face at angle 0: the hole alone tells the lobes apart."""
    rng = np.random.default_rng(seed)
    rim_angle = rng.uniform(0, 2 * np.pi, n)
    rim_radius = 10 + 0.4 * np.cos(LOBES * rim_angle)
    rim = np.stack([rim_radius * np.cos(rim_angle), rim_radius * np.sin(rim_angle), rng.uniform(0, 3, n)], axis=1)
    top = rng.uniform(-10.4, 10.4, size=(4 * n, 2))
    radius, angle = np.linalg.norm(top, axis=1), np.arctan2(top[:, 1], top[:, 0])
    inside = radius < 10 + 0.4 * np.cos(LOBES * angle)
    hole = np.linalg.norm(top - [7.0, 0.0], axis=1) < 1.5
    top = top[inside & ~hole][:n]
    return np.concatenate([rim, np.column_stack([top, np.full(len(top), 3.0)])])


def turned(degrees: float) -> np.ndarray:
    return Rotation.from_rotvec(np.radians(degrees) * np.array([0.0, 0.0, 1.0])).as_matrix()


def angle_between(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(Rotation.from_matrix(a @ b.T).magnitude()))


def test_sweep_angles_cover_the_span_both_ways_and_a_half_turn() -> None:
    assert sweep_angles(4.0, 12.0) == [-12.0, -8.0, -4.0, 4.0, 8.0, 12.0, 180.0]
    for wrong in (0.0, -2.0, float("nan")):
        with pytest.raises(ValueError, match="positive step"):
            sweep_angles(wrong)


def test_a_scan_registered_one_lobe_over_is_turned_back_into_place() -> None:
    reference = SurfaceReference(torch.from_numpy(lobed_disc(20_000, 0)))
    scan = lobed_disc(6000, 1)
    # Seen whole from above: turned, its top face would cover the hole, which tells the poses apart.
    start = (turned(360.0 / LOBES), np.zeros(3))  # one lobe over: the lobes fit, the hole does not
    cap = 10 * VOXEL
    # Plain ICP from that start stays in the wrong lobe (what the sweep is for).
    source, valid = pad_stack([scan], "cpu")
    rotation, _, _ = icp_batch(source, reference.index, torch.from_numpy(start[0][None]), torch.zeros(1, 3, dtype=torch.float64), 20,
                               0.8, reference.normals, cap=cap, valid=valid)
    assert angle_between(rotation[0].numpy(), np.eye(3)) > 5.0
    (swept_rotation, swept_shift), = swept_motions([scan], [start], reference, 2.0, VOXEL, 0.8, cap)
    assert angle_between(swept_rotation, np.eye(3)) < 1.0
    assert np.linalg.norm(swept_shift) < 0.1
    # A scan already in place stays there.
    (kept_rotation, _), = swept_motions([scan], [(np.eye(3), np.zeros(3))], reference, 2.0, VOXEL, 0.8, cap)
    assert angle_between(kept_rotation, np.eye(3)) < 1.0


def test_template_pose_sweep_validates_saves_and_old_checkpoints_load_without_it(tmp_path) -> None:
    for wrong in (-1.0, float("nan"), float("inf")):
        with pytest.raises(InputError, match="pose_sweep"):
            TemplateDetector(pose_sweep=wrong)
    templates = [lobed_disc(3000, seed) for seed in range(2)]
    detector = TemplateDetector(device="cpu", location_scans=0, smoothing_k=32, pose_sweep=4.0).fit(
        templates, progress=False)
    scan = lobed_disc(3000, 9) @ turned(3.0).T
    assert detector.pose_sweep == 4.0
    assert_param_saves_and_old_checkpoints_get(detector, scan, tmp_path / "m", "pose_sweep", 0.0)
