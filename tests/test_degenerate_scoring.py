"""Degenerate scans through the whole detector (align, render, network, scoring), and the
warning for scans that do not look like the training class."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from mvr3d.errors import InputError
from mvr3d.models import MVRDetector
from test_detector import sphere, tiny_config


@pytest.fixture(scope="module")
def fitted() -> MVRDetector:
    return MVRDetector(tiny_config(iterations=2)).fit([sphere(2000, s) for s in range(2)], progress=False)


def _cases() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    base = sphere(1500, 8)
    plane = np.zeros((1500, 3))
    plane[:, :2] = rng.uniform(-10, 10, size=(1500, 2))
    line = np.zeros((1500, 3))
    line[:, 0] = np.linspace(-10, 10, 1500)
    return {
        "coplanar": plane,
        "collinear": line,
        "half duplicated": np.concatenate([base, base[:750]]),
        "offset 1e6, float64": base + 1e6,
        "float32": base.astype(np.float32),
    }


@pytest.mark.parametrize("name", list(_cases()))
def test_degenerate_scans_score_every_point(fitted: MVRDetector, name: str) -> None:
    points = _cases()[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # flat scans rightly draw the size warning
        result = fitted.score(points)
    assert result.point_scores.shape == (len(points),)
    assert np.isfinite(result.point_scores).all() and np.isfinite(result.object_score)


def test_offset_scan_scores_like_the_original(fitted: MVRDetector) -> None:
    base = sphere(1500, 8)
    np.testing.assert_allclose(fitted.score(base + 1e6).point_scores, fitted.score(base).point_scores, atol=2e-3)


def test_identical_points_are_refused(fitted: MVRDetector) -> None:
    with pytest.raises(InputError, match="identical"):
        fitted.score(np.ones((500, 3)))


@pytest.mark.parametrize("scale", [3.0, 0.1])
def test_scan_unlike_the_training_class_warns(fitted: MVRDetector, scale: float) -> None:
    with pytest.warns(UserWarning, match=r"x the size of the training scans") as caught:
        fitted.score(sphere(1500, 9) * scale)
    # The ratio compares radii of two random samples of a sphere: within a few percent.
    ratio = float(re.search(r"([0-9.]+)x the size", str(caught[0].message)).group(1))
    assert ratio == pytest.approx(scale, rel=0.05)


def test_scan_of_training_size_does_not_warn(fitted: MVRDetector) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted.score(sphere(1500, 9))
