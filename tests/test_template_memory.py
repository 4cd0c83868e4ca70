"""``template`` under memory pressure: a batch that runs out of memory (other processes on the
same GPU, as when several benchmark runs share one) is scored in halves; a single scan that does
gets a clear ResourceError, not the allocator's traceback."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from mvr3d.baselines.template import TemplateDetector
from mvr3d.errors import ResourceError
from test_density import sphere_scan


@pytest.fixture(scope="module")
def detector() -> TemplateDetector:
    return TemplateDetector(device="cpu", smoothing_k=32).fit([sphere_scan(2000, seed) for seed in range(2)],
                                                               progress=False)


def fails_above(detector: TemplateDetector, monkeypatch: pytest.MonkeyPatch, most: int,
                error: Exception) -> list[int]:
    """Make scoring more than ``most`` scans at once raise ``error``; returns the batch sizes tried."""
    real, tried = detector._score_clouds, []

    def limited(points: list[np.ndarray]):
        tried.append(len(points))
        if len(points) > most:
            raise error
        return real(points)

    monkeypatch.setattr(detector, "_score_clouds", limited)
    return tried


def test_a_batch_out_of_memory_is_scored_in_halves(detector, monkeypatch, caplog) -> None:
    scans = [sphere_scan(1500, 10 + i) for i in range(3)]
    alone = [detector.score(scan) for scan in scans]
    tried = fails_above(detector, monkeypatch, 1, torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    with caplog.at_level(logging.WARNING, logger="mvr3d.baselines.template"):
        together = detector.score_many(scans)
    assert tried == [3, 1, 2, 1, 1]
    for got, want in zip(together, alone, strict=True):
        np.testing.assert_array_equal(got.point_scores, want.point_scores)
        assert got.object_score == want.object_score
    assert "out of memory scoring 3 scans together on cpu: scoring them in halves" in caplog.text


def test_one_scan_out_of_memory_is_a_resource_error_and_other_errors_pass(detector, monkeypatch) -> None:
    fails_above(detector, monkeypatch, 0, torch.OutOfMemoryError("CUDA out of memory"))
    with pytest.raises(ResourceError, match="scoring a 1,500-point scan ran out of memory on cpu; free memory there"):
        detector.score(sphere_scan(1500, 20))
    fails_above(detector, monkeypatch, 0, RuntimeError("shape mismatch"))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        detector.score(sphere_scan(1500, 21))
