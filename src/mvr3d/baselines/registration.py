"""Reg3D-AD-like baseline: register the test scan to each template, score by residual.

Registration is :class:`~mvr3d.geometry.aligner.TemplateAligner`: a pose search over
rotations and centroid positions on every template, then trimmed point-to-plane ICP.
A point's score is the distance of the aligned point to the nearest template point; the
object score is the mean of the top 1 %.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from mvr3d.errors import InputError
from mvr3d.geometry.aligner import TemplateAligner
from mvr3d.scans import ScanScore, as_points, load_clouds, object_score


class RegistrationDetector:
    """Template registration (Reg3D-AD-like) with residual-distance anomaly scores.

    The pose search and its fitted templates live in ``aligner`` (see TemplateAligner
    for its parameters, which this constructor passes on).
    """

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
    ) -> None:
        self.top_fraction = top_fraction
        self.seed = seed
        self.device = torch.device(device)
        self.aligner = TemplateAligner(
            voxel_size_ratio, coarse_points, fine_points, n_random, coarse_iterations, fine_iterations,
            keep_best, trim, seed, self.device, shift_candidates,
        )

    def fit(self, scans: Iterable[object], progress: bool = False) -> RegistrationDetector:
        self.aligner.fit(load_clouds(scans), progress=progress)
        return self

    def score(self, scan: object) -> ScanScore:
        if not self.aligner.fitted:
            raise InputError("RegistrationDetector.score called before fit")
        points = as_points(scan).astype(np.float64)
        centred = points - points.mean(axis=0)
        j, rot, trans = self.aligner.align(centred)
        point_scores = self.aligner.template_distance(j, centred @ rot.T + trans).cpu().numpy()
        return ScanScore(point_scores, object_score(point_scores, "top1", self.top_fraction), 1.0)
