"""Template-surface deviation: register a scan to the fused templates, score by distance.

Fit: the templates are registered onto the first and fused into one voxel-averaged
reference surface with a local plane per sample (:mod:`mvr3d.geometry.surface`). Score:
the scan is registered to its nearest template (pose search over rotations and centroid
positions, then point-to-plane ICP, :class:`~mvr3d.geometry.TemplateAligner`), moved into the fused
frame, and each point's distance to the local plane of its nearest reference sample is
divided by the scan's own robust spread (1.4826 x MAD): "how many noise levels off the
surface", so a noisier scanner or a sparser scan does not read as a defect.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from mvr3d.errors import InputError
from mvr3d.geometry import SurfaceReference, TemplateAligner, fuse_templates
from mvr3d.models.scoring import robust_standardise
from mvr3d.scans import ScanScore, as_points, load_clouds, object_score


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class TemplateDetector:
    """Distance to the fused template surface in robust noise units per scan."""

    def __init__(self, seed: int = 0, top_fraction: float = 0.01, standardise: bool = True,
                 device: str | torch.device | None = None) -> None:
        self.seed = seed
        self.top_fraction = top_fraction
        self.standardise = standardise
        self.device = torch.device(device) if device is not None else default_device()
        self.aligner_: TemplateAligner | None = None
        self.reference_: SurfaceReference | None = None

    def fit(self, scans: Iterable[object], progress: bool = False) -> TemplateDetector:
        clouds = load_clouds(scans)
        self.aligner_ = TemplateAligner(seed=self.seed, device=self.device).fit(clouds, progress=progress)
        anchor = TemplateAligner(seed=self.seed, device=self.device).fit(clouds[:1])
        self.reference_ = fuse_templates(clouds, lambda points: anchor.pose(points)[1:], device=self.device)
        return self

    def point_deviation(self, points: np.ndarray) -> torch.Tensor:
        """Each point's distance to the fused surface, in the scan's own units (float32)."""
        if self.aligner_ is None or self.reference_ is None:
            raise InputError("TemplateDetector.score called before fit")
        j, moved = self.aligner_.to_template_frame(points.astype(np.float64))
        moved = self.reference_.from_template(j, moved)
        return self.reference_.distance(torch.from_numpy(moved))

    def score(self, scan: object) -> ScanScore:
        points = as_points(scan)
        deviation = self.point_deviation(points)
        if self.standardise:
            deviation = robust_standardise(deviation, [len(deviation)])
        scores = deviation.float().cpu().numpy()
        return ScanScore(scores, object_score(scores, "top1", self.top_fraction), 1.0)
