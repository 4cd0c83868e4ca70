"""``template_voxel``: the grid of the registration templates (and so of the template reference)."""

import numpy as np
import pytest

from mvr3d.errors import InputError
from mvr3d.models import MVRDetector
from test_detector import sphere, tiny_config

TRAIN = [sphere(8000, s) for s in range(2)]


@pytest.fixture(scope="module")
def fine_detector():
    return MVRDetector(tiny_config(reference="template", view_selection="scan", template_voxel=0.02)).fit(
        TRAIN, progress=False)


def test_the_template_grid_is_the_fraction_of_the_median_diagonal(fine_detector):
    coarse = MVRDetector(tiny_config(reference="template", view_selection="scan", template_voxel=0.04)).fit(
        TRAIN, progress=False)
    diagonal = np.median([np.linalg.norm(c.max(0) - c.min(0)) for c in TRAIN])
    assert fine_detector.aligner_.voxel_ == pytest.approx(0.02 * diagonal, rel=1e-6)
    assert coarse.aligner_.voxel_ == pytest.approx(0.04 * diagonal, rel=1e-6)
    # A finer grid keeps more of each template (a 20-unit sphere: ~4x the points at half the voxel).
    fine_points = sum(len(r) for r in fine_detector.aligner_.references)
    coarse_points = sum(len(r) for r in coarse.aligner_.references)
    assert fine_points > 2.5 * coarse_points


def test_a_loaded_detector_keeps_its_template_grid_and_scores(fine_detector, tmp_path):
    fine_detector.save(tmp_path / "model")
    loaded = MVRDetector.load(tmp_path / "model")
    assert loaded.config.template_voxel == 0.02
    assert loaded.aligner_.voxel_ == fine_detector.aligner_.voxel_
    scan = sphere(5000, 9).astype(np.float32)
    np.testing.assert_allclose(loaded.score(scan).point_scores, fine_detector.score(scan).point_scores,
                               rtol=1e-5, atol=1e-6)


def test_template_voxel_is_validated():
    for bad in (0.0, -0.004, 0.5):
        with pytest.raises(InputError, match="template_voxel"):
            tiny_config(template_voxel=bad)
