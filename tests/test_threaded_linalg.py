"""The scoring thread pool: linalg is warmed up on the calling thread before the pool starts,
and registration (point-to-plane ICP, ``torch.linalg.solve_ex``) run from several threads at
once gives the single-threaded results.

On CUDA, torch initialises its linalg backends lazily and not thread-safely ("lazy wrapper
should be called at most once"); on this CPU test the structure is checked (warm-up first,
then the pool) and the threaded results compared, which is what a GPU run relies on.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from mvr3d.geometry import TemplateAligner
from mvr3d.geometry.icp import plane_step
from mvr3d.models import MVRDetector
from mvr3d.models.mvr import detector as detector_module
from test_detector import sphere, tiny_config

# ICP is a chain of float64 solves; threads share torch's intra-op pool, whose reductions
# may split differently, so a few ulps of float64 may differ after the iterations compound.
ATOL = 1e-9


def blob(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    points = sphere(800, seed) * np.array([1.0, 0.7, 0.5])
    return points + 0.05 * rng.normal(size=points.shape)


def rotated(points: np.ndarray, degrees: float, seed: int) -> np.ndarray:
    axis = np.random.default_rng(seed).normal(size=3)
    axis /= np.linalg.norm(axis)
    rotation = Rotation.from_rotvec(np.deg2rad(degrees) * axis).as_matrix()
    return points @ rotation.T + np.array([0.3, -0.2, 0.1])


@pytest.fixture(scope="module")
def aligner() -> TemplateAligner:
    return TemplateAligner(seed=0, device="cpu").fit([blob(0), blob(1)])


def threaded_detector(monkeypatch: pytest.MonkeyPatch) -> MVRDetector:
    detector = MVRDetector(tiny_config())
    monkeypatch.setattr(detector, "_threaded", lambda: True)  # the GPU path, on the CPU
    return detector


def test_linalg_is_warmed_up_before_the_pool_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_pool = detector_module.ThreadPoolExecutor

    def warm_up(device: torch.device) -> None:
        events.append("warm-up")

    class Pool(real_pool):
        def __init__(self, *args, **kwargs):
            events.append("pool")
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(detector_module, "warm_up_linalg", warm_up)
    monkeypatch.setattr(detector_module, "ThreadPoolExecutor", Pool)
    detector = threaded_detector(monkeypatch)
    assert detector._each(lambda x: x * 2, [(1,), (2,), (3,)]) == [2, 4, 6]
    assert events == ["warm-up", "pool"]


def test_warm_up_runs_every_routine_the_threads_use(monkeypatch: pytest.MonkeyPatch) -> None:
    called: set[str] = set()
    for name in ("solve_ex", "svd", "det", "cross", "eigh"):
        real = getattr(torch.linalg, name)

        def spy(*args, _name=name, _real=real, **kwargs):
            called.add(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(torch.linalg, name, spy)
    monkeypatch.setattr(detector_module, "_warmed_up", set())
    detector_module.warm_up_linalg(torch.device("cpu"))
    assert called == {"solve_ex", "svd", "det", "cross", "eigh"}


def test_registration_from_several_threads_matches_one_thread(
    aligner: TemplateAligner, monkeypatch: pytest.MonkeyPatch
) -> None:
    scans = [(rotated(blob(i % 2), 8.0 + 3 * i, 10 + i),) for i in range(6)]
    serial = [aligner.to_template_frame(*scan) for scan in scans]
    monkeypatch.setattr(detector_module, "_warmed_up", set())  # first use, as in a new process
    threaded = threaded_detector(monkeypatch)._each(aligner.to_template_frame, scans)
    for (index_a, moved_a), (index_b, moved_b) in zip(serial, threaded, strict=True):
        assert index_a == index_b
        np.testing.assert_allclose(moved_b, moved_a, rtol=0, atol=ATOL)


def test_plane_step_from_several_threads_at_once() -> None:
    rng = np.random.default_rng(3)
    problems = []
    for _ in range(8):
        moved = torch.from_numpy(rng.normal(size=(4, 200, 3)))
        normals = torch.nn.functional.normalize(torch.from_numpy(rng.normal(size=(4, 200, 3))), dim=2)
        matched = moved + 0.01 * torch.from_numpy(rng.normal(size=(4, 200, 3)))
        problems.append((moved, matched, normals, torch.ones(4, 200, dtype=torch.float64)))
    serial = [plane_step(*p) for p in problems]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(lambda p: plane_step(*p), problems))
    for (rot_a, trans_a), (rot_b, trans_b) in zip(serial, threaded, strict=True):
        torch.testing.assert_close(rot_b, rot_a, rtol=0, atol=ATOL)
        torch.testing.assert_close(trans_b, trans_a, rtol=0, atol=ATOL)
