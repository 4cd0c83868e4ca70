"""Training saves its state and an interrupted fit resumes to bit-identical weights."""

from pathlib import Path

import numpy as np
import pytest
import torch

from mvr3d.errors import CheckpointError
from mvr3d.models import MVRDetector
from mvr3d.models import detector as detector_module
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
    with pytest.raises(CheckpointError, match="other training scans"):
        MVRDetector(tiny_config(iterations=2)).fit(SCANS[:1], progress=False, state_file=state)
    state.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="cannot read the training state"):
        MVRDetector(tiny_config(iterations=2)).fit(SCANS, progress=False, state_file=state)
