"""Training saves its state and an interrupted fit resumes to bit-identical weights."""

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mvr3d.errors import CheckpointError
from mvr3d.models import MVRDetector
from mvr3d.models.mvr import detector as detector_module
from test_detector import sphere, tiny_config

SCANS = [sphere(1500, s) for s in range(2)]


def student_weights(detector: MVRDetector) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in detector.net.student.state_dict().items()}


def count_iterations(monkeypatch: pytest.MonkeyPatch, interrupt_at: int | None = None) -> dict[str, int]:
    """Count training iterations; optionally raise KeyboardInterrupt (Ctrl-C) in one."""
    real = detector_module.global_cosine_hard_mining
    count = {"n": 0}

    def counted(*args, **kwargs):
        count["n"] += 1
        if count["n"] == interrupt_at:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(detector_module, "global_cosine_hard_mining", counted)
    return count


def test_interrupted_fit_resumes_to_identical_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tiny_config(iterations=7)
    straight = MVRDetector(config).fit(SCANS, progress=False)
    state = tmp_path / "run" / "training-state.pt"
    with monkeypatch.context() as patch:
        count_iterations(patch, interrupt_at=6)  # dies in iteration 6; iteration 4's state was saved
        with pytest.raises(KeyboardInterrupt):
            MVRDetector(config).fit(SCANS, progress=False, state_file=state, save_every=2)
    assert state.is_file()
    with monkeypatch.context() as patch:
        count = count_iterations(patch)
        resumed = MVRDetector(config).fit(SCANS, progress=False, state_file=state, save_every=2)
    assert count["n"] == 3  # iterations 5, 6 and 7 only
    for name, value in student_weights(straight).items():
        torch.testing.assert_close(resumed.net.student.state_dict()[name], value, rtol=0, atol=0)
    assert resumed.history_ == straight.history_
    probe = sphere(1000, 9)
    np.testing.assert_array_equal(resumed.score(probe).point_scores, straight.score(probe).point_scores)


def test_state_from_other_settings_or_data_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "training-state.pt"
    MVRDetector(tiny_config(iterations=2)).fit(SCANS, progress=False, state_file=state, save_every=1)
    with pytest.raises(CheckpointError, match="lr"):
        MVRDetector(tiny_config(iterations=2, lr=1e-3)).fit(SCANS, progress=False, state_file=state)
    # How the run executes is not a setting of the run: it resumes on another device or batch.
    MVRDetector(tiny_config(iterations=2), view_batch=5, score_dtype="float32").fit(SCANS, progress=False, state_file=state)
    with pytest.raises(CheckpointError, match="other training scans"):
        MVRDetector(tiny_config(iterations=2)).fit(SCANS[:1], progress=False, state_file=state)
    state.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="cannot read the training state"):
        MVRDetector(tiny_config(iterations=2)).fit(SCANS, progress=False, state_file=state)


# The child's loss sleeps 30 ms a step (same arithmetic): 40 steps then outlast the parent's
# polling and random wait even on a loaded machine, so the kill lands mid-training.
_FIT_CHILD = """
import sys, time
sys.path.insert(0, sys.argv[2])
from test_detector import sphere, tiny_config
from mvr3d.models import MVRDetector
from mvr3d.models.mvr import detector
loss = detector.global_cosine_hard_mining
def slow_loss(*args, **kwargs):
    time.sleep(0.03)
    return loss(*args, **kwargs)
detector.global_cosine_hard_mining = slow_loss
scans = [sphere(1500, s) for s in range(2)]
MVRDetector(tiny_config(iterations=int(sys.argv[3]))).fit(scans, progress=False, state_file=sys.argv[1], save_every=1)
"""


def test_fit_killed_with_sigkill_resumes_to_identical_weights(tmp_path: Path) -> None:
    """SIGKILL at a random moment once training has saved a state; resuming in this
    process must end exactly where an uninterrupted fit ends."""
    iterations = 40
    straight = MVRDetector(tiny_config(iterations=iterations)).fit(SCANS, progress=False)
    rng = random.Random(99)
    state = tmp_path / "training-state.pt"
    child = subprocess.Popen(
        [sys.executable, "-c", _FIT_CHILD, str(state), str(Path(__file__).parent), str(iterations)],
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not state.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    saved = torch.load(state, weights_only=True)["iteration"]
    assert 1 <= saved < iterations  # killed mid-training
    resumed = MVRDetector(tiny_config(iterations=iterations)).fit(SCANS, progress=False, state_file=state)
    for name, value in student_weights(straight).items():
        torch.testing.assert_close(resumed.net.student.state_dict()[name], value, rtol=0, atol=0)
    assert resumed.history_ == straight.history_


def test_an_old_timm_gets_a_clear_error(monkeypatch) -> None:
    """timm before 1.0.31 has no clipping_threshold: say which timm is needed, not a TypeError."""
    import torch

    from mvr3d.errors import MVR3DError
    from mvr3d.models.mvr import optim

    def old_adamw(params, lr, betas, eps, weight_decay, amsgrad):  # timm 1.0.29's signature, in short
        raise AssertionError("not reached")

    monkeypatch.setattr(optim, "AdamWLegacy", old_adamw)
    with pytest.raises(MVR3DError, match=r"timm >= 1\.0\.31"):
        optim.stable_adamw([torch.nn.Parameter(torch.zeros(2))], lr=1e-3, weight_decay=0.0)
