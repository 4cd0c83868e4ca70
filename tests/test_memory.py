"""Scans that cannot fit fail early with sizes and the max_points advice."""

import numpy as np
import pytest
import torch

from mvr3d.errors import ResourceError
from mvr3d.models import MVRDetector
from mvr3d.models.mvr import detector as detector_module
from mvr3d.utils import memory
from test_detector import sphere, tiny_config


@pytest.fixture(scope="module")
def fitted() -> MVRDetector:
    return MVRDetector(tiny_config(iterations=2)).fit([sphere(2000, s) for s in range(2)], progress=False)


def test_cpu_memory_is_known() -> None:
    free = memory.available_bytes(torch.device("cpu"))
    assert free is not None and free > 2**20


def test_scan_too_large_for_free_memory_fails_before_work(fitted: MVRDetector, monkeypatch: pytest.MonkeyPatch) -> None:
    points = 20_000_000
    monkeypatch.setattr(memory, "available_bytes", lambda device: 2 * 2**30)
    monkeypatch.setattr(MVRDetector, "_score_clouds", lambda *a: pytest.fail("scoring started"))
    monkeypatch.setattr(detector_module, "reduce_points", lambda cloud, limit, voxel=None, voxel_point="mean": (np.broadcast_to(np.zeros(3), (points, 3)), None))
    with pytest.raises(ResourceError, match=r"needs about 2\.\d GiB on cpu but only 2\.0 GiB is free.*max_points") as error:
        fitted.score(sphere(500, 3))
    message = str(error.value)
    assert "20,000,000-point" in message
    suggested = int(message.split("e.g. ")[1].split(")")[0].replace(",", ""))
    assert 100 <= suggested < points
    assert fitted._memory_needed(suggested) <= 2 * 2**30  # the suggestion itself fits


def test_too_little_memory_for_anything_says_so(fitted: MVRDetector, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "available_bytes", lambda device: 2**29)
    with pytest.raises(ResourceError, match="free some memory"):
        fitted.score(sphere(5000, 3))


def test_max_points_makes_it_fit(fitted: MVRDetector, monkeypatch: pytest.MonkeyPatch) -> None:
    points = sphere(5000, 3)
    needed = fitted._memory_needed(1000)
    monkeypatch.setattr(memory, "available_bytes", lambda device: needed + 2**20)
    fitted.config.max_points = 1000
    try:
        result = fitted.score(points)
    finally:
        fitted.config.max_points = None
    assert result.point_scores.shape == (5000,) and np.isfinite(result.point_scores).all()


@pytest.mark.parametrize("error", [torch.OutOfMemoryError("CUDA out of memory"), RuntimeError("DefaultCPUAllocator: can't allocate memory")])
def test_allocator_failure_becomes_a_resource_error(fitted, monkeypatch, error) -> None:
    def fail(*args):
        raise error

    monkeypatch.setattr(MVRDetector, "_score_clouds", fail)
    with pytest.raises(ResourceError, match="ran out of memory on cpu.*max_points"):
        fitted.score(sphere(500, 1))


def test_other_runtime_errors_pass_through(fitted, monkeypatch) -> None:
    def fail(*args):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(MVRDetector, "_score_clouds", fail)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        fitted.score(sphere(500, 1))
