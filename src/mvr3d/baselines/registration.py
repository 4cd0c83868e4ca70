"""Reg3D-AD-like baseline: register the test scan to each template, score by residual.

Registration is :class:`~mvr3d.geometry.aligner.TemplateAligner`: a pose search over
rotations and centroid positions on every template, then trimmed point-to-plane ICP.
A point's score is the distance of the aligned point to the nearest template point; the
object score is the mean of the top 1 %.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from mvr3d.errors import CheckpointError
from mvr3d.geometry.aligner import TemplateAligner
from mvr3d.models.base import ArrayStateDetector
from mvr3d.models.persistence import check_array
from mvr3d.models.registry import register_detector
from mvr3d.scans import ScanScore, as_points, load_clouds, object_score


def aligner_arrays(aligner: TemplateAligner, prefix: str = "") -> dict[str, np.ndarray]:
    """A fitted aligner's state as named arrays: its voxel size and the centred templates
    and their offsets (the rest is derived from them, identically on reload)."""
    arrays = {f"{prefix}voxel": np.array([aligner.voxel_], dtype=np.float64)}
    arrays.update({f"{prefix}{key}": value.numpy() for key, value in aligner.state_dict().items()})
    return arrays


def restore_aligner(aligner: TemplateAligner, arrays: dict[str, np.ndarray], path: Path, prefix: str = "") -> int:
    """Give ``aligner`` the templates :func:`aligner_arrays` saved; returns their count."""
    voxel = check_array(arrays, f"{prefix}voxel", (1,), path)
    count = sum(1 for key in arrays if key.startswith(f"{prefix}centred."))
    if count == 0 or not voxel[0] > 0:
        raise CheckpointError(f"{path}: the aligner's templates (arrays '{prefix}centred.*') or voxel size are missing")
    centred = [check_array(arrays, f"{prefix}centred.{j}", (None, 3), path) for j in range(count)]
    offsets = [check_array(arrays, f"{prefix}offset.{j}", (3,), path) for j in range(count)]
    aligner.set_templates(centred, offsets, float(voxel[0]))
    return count


@register_detector("registration")
class RegistrationDetector(ArrayStateDetector):
    """Template registration (Reg3D-AD-like) with residual-distance anomaly scores.

    The pose search and its fitted templates live in ``aligner`` (see TemplateAligner
    for its parameters, which this constructor passes on).
    """

    calibrate_posed = True  # it finds each scan's pose, so calibration views come in random poses

    def __init__(
        self,
        voxel_size_ratio: float = 0.004,
        coarse_points: int = 200,
        fine_points: int = 2000,
        n_random: int = 24,
        coarse_iterations: int = 12,
        fine_iterations: int = 20,
        keep_best: int = 4,
        trim: float = 0.8,
        top_fraction: float = 0.01,
        seed: int = 0,
        device: str | torch.device = "cpu",
        shift_candidates: int = 8,
        survivors: int = 0,
        screen_iterations: int = 3,
    ) -> None:
        self.top_fraction = top_fraction
        self.seed = seed
        self.device = torch.device(device)
        self.aligner = TemplateAligner(
            voxel_size_ratio, coarse_points, fine_points, n_random, coarse_iterations, fine_iterations,
            keep_best, trim, seed, self.device, shift_candidates, survivors, screen_iterations,
        )

    @property
    def is_fitted(self) -> bool:
        return self.aligner.fitted

    def fit(self, scans: Iterable[object], progress: bool = True) -> RegistrationDetector:
        self.aligner.fit(load_clouds(scans), progress=progress)
        return self

    def score(self, scan: object) -> ScanScore:
        self.check_is_fitted()
        points = as_points(scan).astype(np.float64)
        centred = points - points.mean(axis=0)
        j, rot, trans = self.aligner.align(centred)
        point_scores = self.aligner.template_distance(j, centred @ rot.T + trans).cpu().numpy()
        return ScanScore(point_scores, object_score(point_scores, "top1", self.top_fraction), 1.0)

    # ------------------------------------------------------------- persistence
    def get_params(self) -> dict[str, object]:
        return {**self.aligner.params(), "top_fraction": self.top_fraction}

    def state_arrays(self) -> dict[str, np.ndarray]:
        return aligner_arrays(self.aligner)

    def restore_state(self, arrays: dict[str, np.ndarray], path: Path) -> None:
        restore_aligner(self.aligner, arrays, path)
