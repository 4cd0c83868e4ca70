"""Normal twins: each scan's errors set against those of normal scans with its sampling and noise."""

import numpy as np
import pytest
import torch

from mvr3d.errors import InputError
from mvr3d.geometry.surface import normal_twin
from mvr3d.metrics.ranking import auroc
from mvr3d.models import MVRDetector
from mvr3d.scans import as_points
from test_detector import sphere, tiny_config, with_bulge
from test_reference_draw import NOISE, flat_reference, noisy_plane_with_bump


def test_a_twin_has_the_reference_shape_and_the_scan_noise():
    scan, on_bump = noisy_plane_with_bump(0)
    twin = normal_twin(torch.from_numpy(scan), flat_reference(1), smoothing=32, seed=4).numpy()
    # Points move along the plane's normal only, so the sampling is the scan's.
    np.testing.assert_array_equal(twin[:, :2], scan[:, :2])
    # The bump (0.3-0.5 high where it is marked) is gone, but for its curvature within a
    # 32-point neighbourhood, which the twin's noise keeps: a small share of its height.
    assert np.abs(twin[on_bump, 2]).max() < 0.1
    assert np.abs(twin[on_bump, 2]).mean() < 3 * NOISE
    # The noise keeps its level: a residual about a 32-point mean keeps sqrt(31/32) of it, and
    # over 6000 draws the sample spread is within a few per cent of the true one.
    away = np.linalg.norm(scan[:, :2], axis=1) > 1.2
    assert 0.9 < twin[away, 2].std() / NOISE < 1.1
    # A fresh arrangement: the twin's noise is not the scan's draw point for point.
    assert abs(np.corrcoef(twin[away, 2], scan[away, 2])[0, 1]) < 0.5


def test_a_twin_hangs_on_the_points_and_the_seed_not_their_order():
    scan, _ = noisy_plane_with_bump(1, points=3000)
    reference = flat_reference(2)
    order = np.random.default_rng(0).permutation(len(scan))
    twin = normal_twin(torch.from_numpy(scan), reference, 32, seed=7)
    shuffled = normal_twin(torch.from_numpy(scan[order]), reference, 32, seed=7)
    torch.testing.assert_close(shuffled, twin[order], atol=1e-12, rtol=0)
    other = normal_twin(torch.from_numpy(scan), reference, 32, seed=8)
    assert not torch.allclose(other, twin)


@pytest.fixture(scope="module")
def with_twins():
    # Dense spheres, as in test_detector's template-reference test.
    config = tiny_config(reference="template", view_selection="scan", null_twins=2)
    return MVRDetector(config).fit([sphere(8000, s) for s in range(2)], progress=False)


def test_each_scan_gets_twins_of_its_own_points(with_twins):
    placed = with_twins._placement().place_with_twins(sphere(8000, 5).astype(np.float32))
    assert len(placed) == 3
    assert all(p.cloud.shape == placed[0].cloud.shape for p in placed)
    assert all(p.reference is not None for p in placed)


@pytest.mark.parametrize("rule", ["top", "shift", "level", "local"])
def test_a_bulge_stands_out_against_the_twins(with_twins, rule, tmp_path):
    config = with_twins.config
    with_twins.config = type(with_twins.config).from_dict({**with_twins.config.to_dict(), "twin_rule": rule})
    bumped, _ = with_bulge(sphere(8000, 9), height=2.0)
    labels = np.linalg.norm(bumped, axis=1) > 10.4  # as in test_detector's deviation test
    result = with_twins.score(bumped)
    assert result.point_scores.shape == (len(bumped),)
    assert auroc(result.point_scores, labels) > 0.9
    good = with_twins.score(sphere(8000, 10))
    # Against the twins a good scan's top errors are about as high as a normal scan's: the
    # bulge's must stand well above them (shift: differences; level and local: alike).
    assert result.object_score > good.object_score + 0.5 * abs(result.object_score)
    with_twins.save(tmp_path / "model")
    loaded = MVRDetector.load(tmp_path / "model")
    assert loaded.config.null_twins == 2 and loaded.config.twin_rule == rule
    np.testing.assert_array_equal(good.point_scores, loaded.score(sphere(8000, 10)).point_scores)
    with_twins.config = config


def test_scores_do_not_hang_on_the_batch(with_twins):
    scans = [sphere(8000, 11), with_bulge(sphere(8000, 12), height=2.0)[0]]
    together = with_twins.score_many(scans)
    for scan, result in zip(scans, together, strict=True):
        alone = with_twins.score(scan)
        # Same twins (seeded by the points), same kernels; the views are batched differently,
        # so allow float32 rounding in the network's reductions.
        np.testing.assert_allclose(result.point_scores, alone.point_scores, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("fields", "match"), [
    ({"reference": "student", "null_twins": 1}, "null_twins"),
    ({"reference": "template", "twin_rule": "ratio"}, "twin_rule"),
    ({"reference": "template", "twin_smoothing": 1}, "twin_smoothing"),
    ({"reference": "template", "null_twins": -1}, "null_twins"),
    ({"reference": "template", "null_twins": 1, "standardise_scores": True}, "null_twins"),
    ({"reference": "template", "null_twins": 1, "deviation_weight": 0.5}, "null_twins"),
])
def test_bad_twin_settings_are_refused(fields, match):
    with pytest.raises(InputError, match=match):
        tiny_config(**fields)


def test_the_top_rule_lowers_the_object_score_by_the_twins_and_keeps_the_point_scores(with_twins):
    scan = with_bulge(sphere(8000, 13), height=2.0)[0]
    against = with_twins.score(scan)
    config = with_twins.config
    with_twins.config = type(config).from_dict({**config.to_dict(), "null_twins": 0})
    try:
        plain = with_twins.score(scan)
    finally:
        with_twins.config = config
    # The same errors: the same kernels, the scan's views batched with its twins' instead of
    # alone (float32 rounding in the network's reductions at most).
    np.testing.assert_allclose(against.point_scores, plain.point_scores, atol=1e-5, rtol=0)
    placed = with_twins._placement().place_with_twins(as_points(scan))  # as score() places it
    errors = with_twins._raw_scores(placed[1:])[0].split(len(scan))
    tops = [float(np.mean(np.sort(e.numpy())[-round(0.01 * len(scan)):])) for e in errors]
    assert against.object_score == pytest.approx(plain.object_score - np.mean(tops), abs=1e-4)
