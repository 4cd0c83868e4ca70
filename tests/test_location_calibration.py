"""Per-location calibration: spreads, and simulated scans reduced as test scans are."""

import numpy as np
import pytest
import torch

from mvr3d.errors import InputError
from mvr3d.models import MVRDetector
from mvr3d.models.components.location_stats import SPREAD_FLOOR, LocationStats
from mvr3d.models.mvr.batch_scoring import reduce_points
from mvr3d.models.mvr.training import as_scored
from test_detector import sphere, tiny_config


def filled_stats(spread: str) -> LocationStats:
    rng = np.random.default_rng(0)
    template = torch.from_numpy(sphere(400, 1)).float()
    stats = LocationStats([template], neighbours=8, spread=spread)
    # Noise that grows along x: a local spread differs from place to place.
    for _ in range(30):
        nearest = torch.from_numpy(rng.integers(0, 400, 300))
        width = 1.0 + (template[nearest, 0] + 10) / 5
        stats.add(0, nearest, torch.from_numpy(rng.normal(size=300)).float() * width)
    return stats.finish()


def test_part_spread_is_one_value_where_local_spreads_vary():
    local, part = filled_stats("local"), filled_stats("part")
    torch.testing.assert_close(part.mean_[0], local.mean_[0])
    assert local.spread_[0].std() > 0.2 * local.spread_[0].mean()
    assert torch.all(part.spread_[0] == part.spread_[0][0])
    assert part.spread_[0][0] == pytest.approx(float(local.spread_[0].median()), rel=1e-5)
    assert float(local.spread_[0].min()) >= SPREAD_FLOOR * float(local.spread_[0].median()) * (1 - 1e-6)


def test_simulated_scan_is_reduced_and_new_points_follow_the_majority():
    sim = sphere(6000, 2).astype(np.float32)
    source = np.arange(6000)
    held = np.zeros(6000, bool)
    held[::3] = True  # a third of the template held out: few voxels have a held-out majority
    unchanged, new = as_scored(sim, source, held, None)
    assert unchanged is sim and np.array_equal(new, held)
    reduced, new = as_scored(sim, source, held, lambda p: reduce_points(p, None, 2.0))
    expected, inverse = reduce_points(sim, None, 2.0)
    np.testing.assert_array_equal(reduced, expected)
    share = np.bincount(inverse, weights=held) / np.bincount(inverse)
    np.testing.assert_array_equal(new, share >= 0.5)
    assert 0 < new.sum() < 0.5 * len(new)


def calibration_count(scan_voxel: float) -> float:
    config = tiny_config(reference="template", view_selection="scan", calibrate=True, template_voxel=0.03,
                         scan_voxel=scan_voxel, calibration_spread="part")
    detector = MVRDetector(config).fit([sphere(8000, s) for s in range(2)], progress=False)
    return float(sum(sums[:, 0].sum() for sums in detector.score_stats_._sums))


def test_calibration_scores_simulated_scans_on_the_scan_grid():
    # The same simulated scans (same seed) on the scan grid: far fewer points recorded.
    assert calibration_count(1.0) < 0.6 * calibration_count(0.0)


def test_calibration_spread_is_validated():
    with pytest.raises(InputError, match="calibration_spread"):
        tiny_config(calibration_spread="global")
