"""``template``'s shared coverage (``shared_reach``): scan points on places of the fused
reference that some template missed do not count towards the object score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from checkpoints import assert_param_saves_and_old_checkpoints_get
from mvr3d.baselines.template import SHARED_REACH, TemplateDetector
from mvr3d.errors import CheckpointError, InputError
from test_density import sphere_scan


def bumped(points: np.ndarray, pole: np.ndarray, height: float = 0.6, width: float = 1.5) -> np.ndarray:
    """``points`` of the radius-10 half sphere with a radial bump of ``height`` around the unit
    direction ``pole``."""
    unit = points / np.linalg.norm(points, axis=1, keepdims=True)
    lift = height * np.exp(-(np.linalg.norm(10 * unit - 10 * pole, axis=1) / width) ** 2)
    return points + lift[:, None] * unit


def fitted(shared_reach: float) -> TemplateDetector:
    """Three templates of the whole half sphere and one without its cap (z > 8.5): the cap is on
    the fused reference, from three templates, with no open edge."""
    templates = [sphere_scan(6000, seed) for seed in range(4)]
    templates[3] = templates[3][templates[3][:, 2] < 8.5]
    return TemplateDetector(device="cpu", smoothing_k=32, shared_reach=shared_reach).fit(templates, progress=False)


def test_a_place_one_template_missed_does_not_count_towards_the_object_score() -> None:
    shared, unshared = fitted(SHARED_REACH), fitted(0.0)
    assert unshared.shared_ is None
    missed = ~shared.shared_.numpy()
    samples = shared.reference_.points.numpy()
    assert 0.02 < missed.mean() < 0.2  # the cap, most of it
    # Nearly all on the cap; a half sphere registers onto another with a tilt of a few degrees
    # (measured up to 3), which can leave a few samples of the bottom rim off some template too.
    assert (samples[missed, 2] > 8.5).mean() > 0.98
    assert missed[samples[:, 2] > 9.2].mean() > 0.9
    scan = sphere_scan(6000, 20)
    on_cap = bumped(scan, np.array([0.0, 0.0, 1.0]))
    on_side = bumped(scan, np.array([0.6, 0.0, 0.8]))
    good = {name: d.score(scan).object_score for name, d in (("shared", shared), ("unshared", unshared))}
    # Without the rule the bump on the cap stands out; with it the cap is not counted.
    assert unshared.score(on_cap).object_score > 3 * good["unshared"]
    assert shared.score(on_cap).object_score < 1.5 * good["shared"]
    # Elsewhere a bump counts as before (the top 1 % is then taken of fewer points: within 10 %),
    # and the cap's points keep their point scores.
    side = shared.score(on_side).object_score
    assert side > 3 * good["shared"] and side == pytest.approx(unshared.score(on_side).object_score, rel=0.1)
    np.testing.assert_allclose(shared.score(on_cap).point_scores, unshared.score(on_cap).point_scores, rtol=1e-6)


def test_shared_coverage_needs_two_templates_and_validates() -> None:
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(InputError, match="shared_reach must be 0 .off. or a number of reference sample spacings"):
            TemplateDetector(shared_reach=bad)
    alone = TemplateDetector(device="cpu", smoothing_k=32).fit([sphere_scan(4000, 0)], progress=False)
    assert alone.shared_ is None and "reference.shared" not in alone.state_arrays()


def test_shared_coverage_saves_and_old_checkpoints_go_without(tmp_path: Path) -> None:
    detector = fitted(SHARED_REACH)
    assert_param_saves_and_old_checkpoints_get(detector, bumped(sphere_scan(4000, 9), np.array([0.0, 0.0, 1.0])),
                                               tmp_path / "m", "shared_reach", 0.0)
    arrays = detector.state_arrays()
    missing = {name: value for name, value in arrays.items() if name != "reference.shared"}
    with pytest.raises(CheckpointError, match="state.safetensors: shared_reach 12.0 needs the array 'reference.shared'"):
        detector.restore_state(missing, Path("m/state.safetensors"))
    halves = np.full_like(arrays["reference.shared"], 0.5)
    with pytest.raises(CheckpointError, match="'reference.shared' must hold 0 or 1 for each reference sample"):
        detector.restore_state({**arrays, "reference.shared": halves}, Path("m/state.safetensors"))
