"""``template``'s normal twins (``null_twins``): a scan's object score less that of the scan drawn
on a normal part, which carries the templates' misfit where the scan looked; "blend" twins lie
between the fused reference and one template and are scored against the fused reference,
"leave_one_out" twins lie on one template and are scored against the fusion of the others."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from checkpoints import assert_param_saves_and_old_checkpoints_get
from mvr3d.baselines.template import TemplateDetector
from mvr3d.detectors import load_detector
from mvr3d.errors import CheckpointError, InputError
from test_density import sphere_scan
from test_shared_coverage import bumped

POINTS = 3000


MODES = ("blend", "leave_one_out")


def fitted(ripple: float, null_twins: int, mode: str) -> TemplateDetector:
    """Three templates of the half sphere; with ``ripple`` each carries its own waves, so the
    fused reference fits no part exactly."""
    templates = [sphere_scan(POINTS, seed, ripple) for seed in range(3)]
    return TemplateDetector(device="cpu", smoothing_k=32, null_twins=null_twins,
                            twin_mode=mode).fit(templates, progress=False)


@pytest.fixture(scope="module")
def detectors() -> dict[tuple[float, int, str], TemplateDetector]:
    plain = {ripple: fitted(ripple, 0, "blend") for ripple in (0.0, 0.3)}
    found = {(ripple, 0, mode): plain[ripple] for ripple in (0.0, 0.3) for mode in MODES}
    return found | {(ripple, 3, mode): fitted(ripple, 3, mode) for ripple in (0.0, 0.3) for mode in MODES}


def test_blend_is_the_default_and_old_checkpoints_leave_one_out() -> None:
    assert TemplateDetector().twin_mode == "blend"
    assert TemplateDetector.legacy_params["twin_mode"] == "leave_one_out"


@pytest.mark.parametrize("mode", MODES)
def test_twins_keep_the_point_scores_and_lower_the_object_score_by_their_weight(detectors, mode: str) -> None:
    plain, twinned = detectors[(0.3, 0, mode)], detectors[(0.3, 3, mode)]
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


@pytest.mark.parametrize("mode", MODES)
def test_twins_take_out_the_misfit_of_templates_that_disagree(detectors, mode: str) -> None:
    """Good scans of rippled parts lie off a fused reference that smears the templates' waves;
    without twins they score far above good scans of smooth parts, with twins about alike."""
    scans = {ripple: [sphere_scan(POINTS, 30 + i, ripple) for i in range(3)] for ripple in (0.0, 0.3)}
    objects = {key[:2]: np.mean([d.score(scan).object_score for scan in scans[key[0]]])
               for key, d in detectors.items() if key[2] == mode}
    plain_gap = objects[(0.3, 0)] - objects[(0.0, 0)]
    twin_gap = objects[(0.3, 3)] - objects[(0.0, 3)]
    assert plain_gap > 1.0  # measured 1.45; with twins 0.35
    assert abs(twin_gap) < 0.5 * plain_gap


@pytest.mark.parametrize("mode", MODES)
def test_a_bump_still_stands_out_and_the_order_of_the_points_does_not_matter(detectors, mode: str) -> None:
    detector = detectors[(0.3, 3, mode)]
    scan = sphere_scan(POINTS, 40, 0.3)
    good = detector.score(scan).object_score
    lifted = bumped(scan, np.array([0.6, 0.0, 0.8]), height=1.0)
    assert detector.score(lifted).object_score > good + 5
    order = np.random.default_rng(0).permutation(len(lifted))
    shuffled = detector.score(lifted[order])
    np.testing.assert_allclose(shuffled.point_scores, detector.score(lifted).point_scores[order], rtol=1e-5, atol=1e-5)
    assert shuffled.object_score == pytest.approx(detector.score(lifted).object_score, rel=1e-4, abs=1e-4)


def test_twins_save_load_and_old_checkpoints_go_without(detectors, tmp_path: Path) -> None:
    detector = detectors[(0.3, 3, "blend")]
    scan = sphere_scan(POINTS, 50, 0.3)
    assert_param_saves_and_old_checkpoints_get(detector, scan, tmp_path / "m", "null_twins", 0)
    arrays = detector.state_arrays()
    assert {f"twin.template.{k}" for k in range(3)} <= set(arrays) and not any("others" in name for name in arrays)
    missing = {name: value for name, value in arrays.items() if name != "twin.template.1"}
    with pytest.raises(CheckpointError, match=r"null_twins 3 \(twin_mode blend\) needs the arrays 'twin.template.1' "
                                              r"\(template 1\)"):
        detector.restore_state(missing, Path("m/state.safetensors"))
    few = {**arrays, "twin.template.0": arrays["twin.template.0"][:1]}
    with pytest.raises(CheckpointError, match="need at least 2 points each"):
        detector.restore_state(few, Path("m/state.safetensors"))


def test_leave_one_out_twins_save_load_and_predate_the_mode(detectors, tmp_path: Path) -> None:
    """Checkpoints with twins saved before ``twin_mode`` existed hold leave-one-out twins and
    load as such, with the scores they were saved with."""
    detector = detectors[(0.3, 3, "leave_one_out")]
    scan = sphere_scan(POINTS, 50, 0.3)
    expected = detector.score(scan).object_score
    assert_param_saves_and_old_checkpoints_get(detector, scan, tmp_path / "m", "twin_mode", "leave_one_out")
    assert load_detector(tmp_path / "m", device="cpu").score(scan).object_score == expected
    arrays = detector.state_arrays()
    assert {f"twin.{part}.{k}" for part in ("template", "others") for k in range(3)} <= set(arrays)
    missing = {name: value for name, value in arrays.items() if name != "twin.others.1"}
    with pytest.raises(CheckpointError, match="needs the arrays 'twin.template.1' and 'twin.others.1'"):
        detector.restore_state(missing, Path("m/state.safetensors"))


def test_blend_twins_move_toward_the_template_by_its_misfit(detectors) -> None:
    """With three templates a blend twin lies 1/sqrt(2) of the way from the scan drawn on the
    fused reference to the scan drawn on the template, with the same noise draw on both: the
    two differ by how far the template lies from the fusion, which the ripple raises."""
    gaps = {}
    for ripple in (0.0, 0.3):
        detector = detectors[(ripple, 3, "blend")]
        assert detector.twin_blend_ == pytest.approx(1 / np.sqrt(2))
        scan = sphere_scan(POINTS, 60, ripple)
        scans = detector._registered([scan])[0].split([POINTS])
        fused = detector._drawn_on(scans, [scan], detector.reference_.points, 0)
        on_template = detector._drawn_on(scans, [scan], detector.twins_[0][0], 0)
        gaps[ripple] = float((on_template - fused).norm(dim=1).median())
    # Measured 0.023 (the templates' noise in their planes) and 0.093 (with the waves).
    assert gaps[0.0] > 0 and gaps[0.3] > 2.5 * gaps[0.0]


def test_twin_settings_are_validated_and_one_template_has_none() -> None:
    for twins, weight in ((-1, 1.0), (1, 0.0), (1, float("nan")), (1, -2.0)):
        with pytest.raises(InputError, match="null_twins must be 0 .off. or a number of templates"):
            TemplateDetector(null_twins=twins, twin_weight=weight)
    with pytest.raises(InputError, match="twin_mode must be one of blend, leave_one_out, got 'loo'"):
        TemplateDetector(null_twins=2, twin_mode="loo")
    with pytest.raises(InputError, match="null_twins and location_scans cannot be combined"):
        TemplateDetector(null_twins=2, location_scans=4)
    alone = TemplateDetector(device="cpu", smoothing_k=32, null_twins=4).fit([sphere_scan(2000, 0)], progress=False)
    assert alone.twins_ == [] and not any(name.startswith("twin.") for name in alone.state_arrays())
