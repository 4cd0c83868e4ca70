"""The template method's noise units (``scan_noise``): scanner noise measured about each
point's local mean (:func:`~mvr3d.geometry.surface.local_noise`), not from the spread of a
scan's deviations over the whole scan."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from checkpoints import assert_param_saves_and_old_checkpoints_get
from mvr3d.baselines.template import TemplateDetector
from mvr3d.errors import InputError
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
    with pytest.raises(InputError, match="scan_noise must be one of local, spread, got 'mad'"):
        TemplateDetector(scan_noise="mad")
    templates = [sphere_scan(3000, seed) for seed in range(2)]
    detector = TemplateDetector(device="cpu", location_scans=0, smoothing_k=32).fit(templates, progress=False)
    assert detector.scan_noise == "local"
    assert_param_saves_and_old_checkpoints_get(detector, sphere_scan(4000, 9), tmp_path / "m", "scan_noise", "spread")


def test_noise_units_follow_the_scanner_noise() -> None:
    """The same part scanned with twice the noise: in noise units a good scan's deviations
    are about alike, while in part units they would double."""
    templates = [sphere_scan(6000, seed) for seed in range(2)]
    detector = TemplateDetector(device="cpu", location_scans=0, smoothing_k=32).fit(templates, progress=False)
    scan = sphere_scan(6000, 20)
    noisier = scan + np.random.default_rng(21).normal(scale=0.05 * np.sqrt(3), size=scan.shape)  # 0.05 -> 0.1
    quiet, loud = detector.score(scan).point_scores, detector.score(noisier).point_scores
    assert np.quantile(loud, 0.9) == pytest.approx(np.quantile(quiet, 0.9), rel=0.3)
