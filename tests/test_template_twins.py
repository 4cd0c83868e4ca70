"""``template``'s normal twins (``null_twins``): a scan's object score less that of the scan drawn
on one template and scored against the fusion of the others, which carries the templates' misfit
where the scan looked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from checkpoints import assert_param_saves_and_old_checkpoints_get
from mvr3d.baselines.template import TemplateDetector
from mvr3d.errors import CheckpointError, InputError
from test_density import sphere_scan
from test_shared_coverage import bumped

POINTS = 3000


def fitted(ripple: float, null_twins: int) -> TemplateDetector:
    """Three templates of the half sphere; with ``ripple`` each carries its own waves, so the
    fused reference fits no part exactly."""
    templates = [sphere_scan(POINTS, seed, ripple) for seed in range(3)]
    return TemplateDetector(device="cpu", smoothing_k=32, null_twins=null_twins).fit(templates, progress=False)


@pytest.fixture(scope="module")
def detectors() -> dict[tuple[float, int], TemplateDetector]:
    return {(ripple, twins): fitted(ripple, twins) for ripple in (0.0, 0.3) for twins in (0, 3)}


def test_twins_keep_the_point_scores_and_lower_the_object_score_by_their_weight(detectors) -> None:
    plain, twinned = detectors[(0.3, 0)], detectors[(0.3, 3)]
    assert len(twinned.twins_) == 3 and plain.twins_ == []
    scan = sphere_scan(POINTS, 20, 0.3)
    base, once = plain.score(scan), twinned.score(scan)
    np.testing.assert_array_equal(once.point_scores, base.point_scores)
    twinned.twin_weight = 2.0
    try:
        twice = twinned.score(scan).object_score
    finally:
        twinned.twin_weight = 1.0
    null = base.object_score - once.object_score
    assert null > 0
    # Linear in the weight; float32 object scores, so within a few of their ulps.
    assert base.object_score - twice == pytest.approx(2 * null, rel=1e-5, abs=1e-5)


def test_twins_take_out_the_misfit_of_templates_that_disagree(detectors) -> None:
    """Good scans of rippled parts lie off a fused reference that smears the templates' waves;
    without twins they score far above good scans of smooth parts, with twins about alike."""
    scans = {ripple: [sphere_scan(POINTS, 30 + i, ripple) for i in range(3)] for ripple in (0.0, 0.3)}
    objects = {key: np.mean([d.score(scan).object_score for scan in scans[key[0]]])
               for key, d in detectors.items()}
    plain_gap = objects[(0.3, 0)] - objects[(0.0, 0)]
    twin_gap = objects[(0.3, 3)] - objects[(0.0, 3)]
    assert plain_gap > 1.0  # measured 1.45; with twins 0.35
    assert abs(twin_gap) < 0.5 * plain_gap


def test_a_bump_still_stands_out_and_the_order_of_the_points_does_not_matter(detectors) -> None:
    detector = detectors[(0.3, 3)]
    scan = sphere_scan(POINTS, 40, 0.3)
    good = detector.score(scan).object_score
    lifted = bumped(scan, np.array([0.6, 0.0, 0.8]), height=1.0)
    assert detector.score(lifted).object_score > good + 5
    order = np.random.default_rng(0).permutation(len(lifted))
    shuffled = detector.score(lifted[order])
    np.testing.assert_allclose(shuffled.point_scores, detector.score(lifted).point_scores[order], rtol=1e-5, atol=1e-5)
    assert shuffled.object_score == pytest.approx(detector.score(lifted).object_score, rel=1e-4, abs=1e-4)


def test_twins_save_load_and_old_checkpoints_go_without(detectors, tmp_path: Path) -> None:
    detector = detectors[(0.3, 3)]
    scan = sphere_scan(POINTS, 50, 0.3)
    assert_param_saves_and_old_checkpoints_get(detector, scan, tmp_path / "m", "null_twins", 0)
    arrays = detector.state_arrays()
    assert {f"twin.{part}.{k}" for part in ("template", "others") for k in range(3)} <= set(arrays)
    missing = {name: value for name, value in arrays.items() if name != "twin.others.1"}
    with pytest.raises(CheckpointError, match="null_twins 3 needs the arrays 'twin.template.1' and 'twin.others.1'"):
        detector.restore_state(missing, Path("m/state.safetensors"))
    few = {**arrays, "twin.template.0": arrays["twin.template.0"][:1]}
    with pytest.raises(CheckpointError, match="need at least 2 points each"):
        detector.restore_state(few, Path("m/state.safetensors"))


def test_twin_settings_are_validated_and_one_template_has_none() -> None:
    for twins, weight in ((-1, 1.0), (1, 0.0), (1, float("nan")), (1, -2.0)):
        with pytest.raises(InputError, match="null_twins must be 0 .off. or a number of templates"):
            TemplateDetector(null_twins=twins, twin_weight=weight)
    with pytest.raises(InputError, match="null_twins and location_scans cannot be combined"):
        TemplateDetector(null_twins=2, location_scans=4)
    alone = TemplateDetector(device="cpu", smoothing_k=32, null_twins=4).fit([sphere_scan(2000, 0)], progress=False)
    assert alone.twins_ == [] and not any(name.startswith("twin.") for name in alone.state_arrays())
