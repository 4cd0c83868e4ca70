"""Checkpoint checks shared by test modules (imported as ``checkpoints``, like ``shapes``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mvr3d.detectors import load_detector


def assert_param_saves_and_old_checkpoints_get(detector, scan: np.ndarray, folder: Path, name: str,
                                               legacy: object) -> None:
    """A fitted detector's ``name`` survives save/load with equal scores on ``scan``, and a
    checkpoint saved before ``name`` existed loads with ``legacy``."""
    detector.save(folder)
    loaded = load_detector(folder, device="cpu")
    assert getattr(loaded, name) == getattr(detector, name)
    np.testing.assert_array_equal(loaded.score(scan).point_scores, detector.score(scan).point_scores)
    record = folder / "detector.json"
    saved = json.loads(record.read_text())
    del saved["params"][name]  # as saved before it existed
    record.write_text(json.dumps(saved))
    assert getattr(load_detector(folder, device="cpu"), name) == legacy
