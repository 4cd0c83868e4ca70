"""Clouds held end to end (`mvr3d.geometry.joined`) give what each cloud gives alone.

The joined forms replace per-scan numpy work in the template method's hot path, so each
is compared with the per-cloud function it stands for. Sums may run in another order
than numpy's, so float64 results are compared to 1e-12 of the coordinates' scale (a
wrong voxel or pairing would be off by a voxel's share of it, many orders more).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from mvr3d.errors import InputError
from mvr3d.geometry import TemplateAligner
from mvr3d.geometry.joined import (
    cloud_means,
    cloud_numbers,
    join_clouds,
    move_clouds,
    voxel_downsample_joined,
)
from mvr3d.geometry.voxels import voxel_downsample

TOLERANCE = 1e-12


def clouds(rng: np.random.Generator) -> list[np.ndarray]:
    """Clouds of different sizes, places and scales; one float32, like a read PCD file."""
    return [rng.normal(size=(700, 3)) * 2 + 5, rng.uniform(-1, 1, size=(40, 3)),
            rng.normal(size=(1, 3)), (rng.normal(size=(300, 3)) * 0.1 - 3).astype(np.float32)]


def test_join_keeps_every_point_as_float64() -> None:
    given = clouds(np.random.default_rng(0))
    joined, sizes = join_clouds(given, "cpu")
    assert sizes == [700, 40, 1, 300] and joined.dtype == torch.float64
    np.testing.assert_array_equal(joined.numpy(), np.concatenate([c.astype(np.float64) for c in given]))
    assert join_clouds([], "cpu")[0].shape == (0, 3)
    assert cloud_numbers(sizes, "cpu").bincount().tolist() == sizes


def test_means_and_motions_match_each_cloud_alone() -> None:
    rng = np.random.default_rng(1)
    given = [c.astype(np.float64) for c in clouds(rng)]
    joined, sizes = join_clouds(given, "cpu")
    np.testing.assert_allclose(cloud_means(joined, sizes).numpy(), [c.mean(axis=0) for c in given], rtol=0, atol=TOLERANCE * 10)
    rotations = Rotation.random(len(given), random_state=2).as_matrix()
    shifts = rng.normal(size=(len(given), 3))
    moved = move_clouds(joined, sizes, list(rotations), list(shifts)).numpy()
    expected = np.concatenate([c @ r.T + t for c, r, t in zip(given, rotations, shifts, strict=True)])
    np.testing.assert_allclose(moved, expected, rtol=0, atol=TOLERANCE * 10)


@pytest.mark.parametrize("voxel", [0.05, 0.4, 50.0])
def test_voxel_downsample_joined_matches_each_cloud(voxel: float) -> None:
    given = [c.astype(np.float64) for c in clouds(np.random.default_rng(3))]
    joined, sizes = join_clouds(given, "cpu")
    sampled, counts = voxel_downsample_joined(joined, sizes, voxel)
    alone = [voxel_downsample(cloud, voxel)[0] for cloud in given]
    assert counts == [len(a) for a in alone]
    np.testing.assert_allclose(sampled.numpy(), np.concatenate(alone), rtol=0, atol=TOLERANCE * 10)


def test_joined_forms_reject_sizes_that_do_not_add_up() -> None:
    joined, _ = join_clouds(clouds(np.random.default_rng(4)), "cpu")
    with pytest.raises(InputError, match="add up"):
        voxel_downsample_joined(joined, [5, 6], 0.1)
    with pytest.raises(InputError, match="add up"):
        cloud_means(joined, [len(joined) + 1])
    with pytest.raises(InputError, match="positive"):
        voxel_downsample_joined(joined, [len(joined)], 0.0)


def test_pose_joined_equals_pose_many_and_rejects_empty_clouds() -> None:
    rng = np.random.default_rng(5)
    template = rng.uniform(-1, 1, size=(3000, 3)) * [1.0, 0.5, 0.2]
    aligner = TemplateAligner(n_random=4, keep_best=2).fit([template])
    scans = [template[:1500] @ Rotation.from_euler("z", 20, degrees=True).as_matrix().T + 0.3, template[1000:2400]]
    many = aligner.pose_many(scans)
    joined = aligner.pose_joined(*join_clouds(scans, "cpu"))
    for (j, rotation, shift), (k, rotation2, shift2) in zip(many, joined, strict=True):
        assert j == k
        np.testing.assert_allclose(rotation, rotation2, rtol=0, atol=1e-10)
        np.testing.assert_allclose(shift, shift2, rtol=0, atol=1e-10)
    with pytest.raises(InputError, match="empty"):
        aligner.pose_many([scans[0], np.zeros((0, 3))])


def test_voxel_keys_too_large_for_one_integer_take_the_row_path() -> None:
    """Extents of 1e6 voxels' 1e9 per axis overflow one int64 key: rows are sorted instead."""
    rng = np.random.default_rng(6)
    given = [rng.uniform(-1e6, 1e6, size=(50, 3)), rng.uniform(0, 1, size=(20, 3))]
    given[1][5] = given[1][4]  # a repeated point: one voxel, two points
    joined, sizes = join_clouds(given, "cpu")
    sampled, counts = voxel_downsample_joined(joined, sizes, 1e-3)
    alone = [voxel_downsample(cloud, 1e-3)[0] for cloud in given]
    assert counts == [50, 19] == [len(a) for a in alone]
    np.testing.assert_allclose(sampled.numpy(), np.concatenate(alone), rtol=1e-12)
