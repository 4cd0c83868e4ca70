"""The template method's noise units (``scan_noise``): scanner noise measured about each
point's local mean (:func:`~mvr3d.geometry.surface.local_noise`), not from the spread of a
scan's deviations over the whole scan; by default with the neighbours found on the reference's
planes and the templates' own noise added."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from checkpoints import assert_param_saves_and_old_checkpoints_get
from mvr3d.baselines.template import TemplateDetector
from mvr3d.errors import CheckpointError, InputError
from mvr3d.geometry.surface import local_noise
from test_density import sphere_scan


def wavy_plane(n: int, seed: int, noise: float, wave: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` points of a 10 x 10 square (on the plane), their signed offsets: scanner noise of ``noise`` plus a
    misfit of height ``wave`` and wavelength 10 (a shape the templates miss), and normals +z."""
    rng = np.random.default_rng(seed)
    flat = rng.uniform(0, 10, size=(n, 2))
    signed = rng.normal(scale=noise, size=n) + wave * np.sin(2 * np.pi * flat[:, 0] / 10)
    points = torch.from_numpy(np.column_stack([flat, np.zeros(n)]))  # on the reference's planes
    return points, torch.from_numpy(signed), torch.tensor([[0.0, 0.0, 1.0]]).repeat(n, 1)


def test_local_noise_measures_the_noise_and_not_a_smooth_misfit() -> None:
    """Noise 0.01 under a wave of 0.1 (its spread over the scan is 0.07): the local spread
    over 16 neighbours gives the noise (each variance lacks the neighbours' mean, about
    1/16 of it; the median of a chi-square-like spread sits below its mean; and the wave
    adds a little: within 15 %)."""
    for noise in (0.01, 0.03):
        points, signed, normals = wavy_plane(60_000, 1, noise, 0.1)
        measured = local_noise([points], [signed], [normals], [None])
        assert measured.shape == (1,)
        assert float(measured[0]) == pytest.approx(noise, rel=0.15)
        assert float(signed.std()) > 2.5 * noise  # what a spread over the scan would have taken


def test_local_noise_of_several_scans_and_around_anchors() -> None:
    quiet, loud = wavy_plane(20_000, 2, 0.01, 0.1), wavy_plane(30_000, 3, 0.04, 0.1)
    scans = [quiet, loud]
    together = local_noise([s[0] for s in scans], [s[1] for s in scans], [s[2] for s in scans], [None, None])
    assert float(together[0]) == pytest.approx(0.01, rel=0.15)
    assert float(together[1]) == pytest.approx(0.04, rel=0.15)
    alone = local_noise([loud[0]], [loud[1]], [loud[2]], [None])
    torch.testing.assert_close(together[1], alone[0])
    anchored = local_noise([loud[0]], [loud[1]], [loud[2]], [torch.arange(0, 30_000, 16)])
    assert float(anchored[0]) == pytest.approx(float(alone[0]), rel=0.1)
    # Tiny scans in the batch are measured alone: they do not shrink the others' neighbourhoods.
    single, few = wavy_plane(1, 4, 0.01, 0.0), wavy_plane(5, 5, 0.01, 0.0)
    mixed = local_noise([single[0], loud[0], few[0]], [single[1], loud[1], few[1]], [single[2], loud[2], few[2]],
                        [None, None, None])
    assert float(mixed[0]) == 0.0 and float(mixed[2]) > 0
    torch.testing.assert_close(mixed[1], alone[0])


def test_template_scan_noise_validates_saves_and_old_checkpoints_keep_the_spread(tmp_path) -> None:
    with pytest.raises(InputError, match="scan_noise must be one of planes, local, spread, got 'mad'"):
        TemplateDetector(scan_noise="mad")
    templates = [sphere_scan(3000, seed) for seed in range(2)]
    detector = TemplateDetector(device="cpu", location_scans=0, smoothing_k=32).fit(templates, progress=False)
    assert detector.scan_noise == "planes" and detector.template_noise_ > 0
    # Equal scores after loading need the templates' noise back, not only the parameter.
    assert_param_saves_and_old_checkpoints_get(detector, sphere_scan(4000, 9), tmp_path / "m", "scan_noise", "spread")
    local = TemplateDetector(device="cpu", location_scans=0, smoothing_k=32, scan_noise="local").fit(templates,
                                                                                                  progress=False)
    assert local.template_noise_ is None and "template_noise" not in local.state_arrays()
    assert_param_saves_and_old_checkpoints_get(local, sphere_scan(4000, 9), tmp_path / "l", "scan_noise", "spread")
    local.scan_noise = "planes"  # switched after fitting: no templates' noise was measured
    with pytest.raises(InputError, match="scan_noise 'planes' needs the templates' noise, measured by fit"):
        local.score(sphere_scan(4000, 9))


def test_a_checkpoint_without_the_templates_noise_is_refused() -> None:
    detector = TemplateDetector(device="cpu", location_scans=0, smoothing_k=32).fit(
        [sphere_scan(3000, seed) for seed in range(2)], progress=False)
    arrays = detector.state_arrays()
    missing = {name: value for name, value in arrays.items() if name != "template_noise"}
    with pytest.raises(CheckpointError, match="state.safetensors: scan_noise 'planes' needs the array 'template_noise'"):
        detector.restore_state(missing, Path("m/state.safetensors"))
    with pytest.raises(CheckpointError, match="'template_noise' must hold one finite value >= 0, got -1.0"):
        detector.restore_state({**arrays, "template_noise": np.array([-1.0])}, Path("m/state.safetensors"))
    with pytest.raises(CheckpointError, match="'template_noise' has shape"):
        detector.restore_state({**arrays, "template_noise": np.array([1.0, 2.0])}, Path("m/state.safetensors"))


def scanned(points: torch.Tensor, signed: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
    """The points as a scanner gives them: each moved off its plane by its offset."""
    return points + signed[:, None] * normals


@pytest.mark.parametrize("noise", [0.03, 0.05])
def test_noise_on_the_planes_does_not_follow_the_density(noise: float) -> None:
    """The same noise sampled 40x denser: found among the points as scanned, the neighbours of a
    dense scan are picked by the noise (like offsets lie closer) and its noise comes out low;
    found on the planes, the noise comes out the same (within 15 %, as above) at both densities."""
    sparse, dense = wavy_plane(5_000, 6, noise, 0.0), wavy_plane(200_000, 7, noise, 0.0)
    anchors = [torch.arange(0, 5_000, 4), torch.arange(0, 200_000, 160)]
    planes = local_noise([sparse[0], dense[0]], [sparse[1], dense[1]], [sparse[2], dense[2]], anchors)
    as_scanned = local_noise([scanned(*sparse), scanned(*dense)], [sparse[1], dense[1]], [sparse[2], dense[2]], anchors)
    assert float(planes[0]) == pytest.approx(noise, rel=0.15) and float(planes[1]) == pytest.approx(noise, rel=0.15)
    assert float(as_scanned[1]) < 0.8 * float(as_scanned[0])


def test_the_templates_noise_joins_each_scans_noise() -> None:
    """Templates of noise 0.05: their noise is measured at fit time, and a scan twice as noisy
    gets units sqrt(0.1^2 + 0.05^2) / sqrt(0.05^2 + 0.05^2) = 1.58x an equal scan's, not 2x."""
    templates = [sphere_scan(6000, seed) for seed in range(2)]
    detector = TemplateDetector(device="cpu", location_scans=0, smoothing_k=32).fit(templates, progress=False)
    assert detector.template_noise_ == pytest.approx(0.05, rel=0.2)
    scan = sphere_scan(6000, 20)
    noisier = scan + np.random.default_rng(21).normal(scale=0.05 * np.sqrt(3), size=scan.shape)  # 0.05 -> 0.1
    units = detector._deviations([scan, noisier])[1]
    assert float(units[1] / units[0]) == pytest.approx(np.hypot(0.1, 0.05) / np.hypot(0.05, 0.05), rel=0.1)
    assert float(units[0]) * 32**0.5 == pytest.approx(np.hypot(0.05, detector.template_noise_), rel=0.15)


def test_noise_units_follow_the_scanner_noise() -> None:
    """The same part scanned with twice the noise: in noise units a good scan's deviations
    are about alike, while in part units they would double."""
    templates = [sphere_scan(6000, seed) for seed in range(2)]
    detector = TemplateDetector(device="cpu", location_scans=0, smoothing_k=32).fit(templates, progress=False)
    scan = sphere_scan(6000, 20)
    noisier = scan + np.random.default_rng(21).normal(scale=0.05 * np.sqrt(3), size=scan.shape)  # 0.05 -> 0.1
    quiet, loud = detector.score(scan).point_scores, detector.score(noisier).point_scores
    assert np.quantile(loud, 0.9) == pytest.approx(np.quantile(quiet, 0.9), rel=0.3)
