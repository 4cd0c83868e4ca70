"""Placing a scan in the frame it is drawn in: its template's (registered by
:class:`~mvr3d.geometry.TemplateAligner` when aligning), turned so that its scanned side
faces the views, with what scoring needs of its match."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mvr3d.geometry import TemplateAligner
from mvr3d.geometry.neighbours import SPACING_SAMPLE, NeighbourIndex
from mvr3d.geometry.surface import normal_twin, project_to_planes, shaped_like
from mvr3d.models.mvr.config import MVRConfig
from mvr3d.models.mvr.sides import SideFinder, facing_rotation, turn_to_views
from mvr3d.scans import ScanLike

# Fewer template points under a scan than this mean it was not matched to its template.
MIN_REFERENCE_POINTS = 64


@dataclass
class Placed:
    """A scan ready to render: on the device, in the frame it is drawn in (its template's,
    turned so that its scanned side faces the views), with what scoring needs of its match."""

    cloud: torch.Tensor
    centre: torch.Tensor | np.ndarray
    template: int | None = None
    nearest: torch.Tensor | None = None  # each point's nearest template point
    deviation: torch.Tensor | None = None  # each point's distance to it
    fill: torch.Tensor | None = None  # template points where the scan has none (drawn, not scored)
    drawn: torch.Tensor | None = None  # the cloud as drawn (denoised), point for point; None: as it is
    reference: torch.Tensor | None = None  # template points under the scan, turned alike (the template reference)

    @property
    def rendered(self) -> torch.Tensor:
        """What the views draw: the scan, then its fill (scores of the first ``len(cloud)`` count)."""
        cloud = self.cloud if self.drawn is None else self.drawn
        return cloud if self.fill is None else torch.cat([cloud, self.fill.to(cloud.dtype)])


def bounding_frame(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Bounding-box centre and the radius of the sphere about it holding every point."""
    centre = (points.min(axis=0).astype(np.float64) + points.max(axis=0)) / 2
    radius = float(np.sqrt(((points - centre) ** 2).sum(axis=1).max()))
    return centre, radius


def on_device(points: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(points)).to(device, non_blocking=True)


def find_sides(aligner: TemplateAligner | None, config: MVRConfig, radius: float | None) -> SideFinder | None:
    """The templates' scannable sides, when the views follow the scanned side."""
    if config.view_selection == "scan" and aligner is not None:
        return SideFinder(aligner.references, config.render, radius, config.side_candidates)
    return None


@dataclass(frozen=True)
class Placement:
    """What placing needs of a fitted detector; built per call, so that it always sees the
    detector's current templates (tests and benchmarks swap them on a detector)."""

    device: torch.device
    centres: Sequence[np.ndarray]
    aligner: TemplateAligner | None
    sides: SideFinder | None
    fill_gap: float | None = None  # complete scans from their template (None: do not)
    denoise_k: int = 0  # draw scans projected onto their local planes (0 or 1: as scanned)
    reference_gap: float | None = None  # cut the template to the scan as its reference (None: do not)
    reference_smoothing: int | None = None  # draw that reference as the scan shaped like it (None: its own points)
    twins: int = 0  # normal twins placed with each scan (see place_with_twins)
    twin_smoothing: int = 32
    seed: int = 0

    def in_template(self, cloud: np.ndarray, template: int) -> Placed:
        """A scan already in ``template``'s frame, matched, completed from its template when
        asked, denoised for drawing when asked, and turned to face the views."""
        points = on_device(cloud, self.device)
        centre = self.centres[template]
        drawn = self.denoised(points)
        if self.aligner is None:
            return Placed(points, centre, drawn=drawn)
        distances, nearest = self.aligner.match(template, points)
        fill = reference = None
        if self.fill_gap is not None or self.reference_gap is not None:
            candidates, gaps = self._template_gaps(template, points)
            fill = None if self.fill_gap is None else candidates[gaps > self.fill_gap]
            reference = None if self.reference_gap is None else _cut(candidates, gaps, self.reference_gap)
            if reference is not None and self.reference_smoothing is not None:
                reference = shaped_like(points if drawn is None else drawn, reference, self.reference_smoothing)
        if self.sides is not None:
            turn = facing_rotation(self.sides.direction(template, nearest))
            points, fill, drawn, reference = (None if cloud is None else turn_to_views(cloud, centre, turn)
                                              for cloud in (points, fill, drawn, reference))
        return Placed(points, centre, template, nearest, distances, fill, drawn, reference)

    def denoised(self, points: torch.Tensor) -> torch.Tensor | None:
        """``points`` projected onto their local planes for drawing; None when not asked."""
        return project_to_planes(points, self.denoise_k) if self.denoise_k > 1 else None

    def _template_gaps(self, template: int, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The template's points (in the scan's dtype) and each one's distance to the scan, in
        the scan's median point spacings: far ones fill the scan, near ones are its reference."""
        offset = torch.as_tensor(self.aligner.offsets_[template], dtype=torch.float64, device=self.device)
        reference = self.aligner.references[template] + offset
        index = NeighbourIndex(points.double())
        sample = points[torch.linspace(0, len(points) - 1, min(len(points), SPACING_SAMPLE), device=points.device).long()]
        spacing = index.query(sample.double(), k=2)[0][:, 1].median()
        distances = index.query(reference, k=1)[0][:, 0]
        return reference.to(points.dtype), distances / spacing

    def place(self, points: np.ndarray) -> Placed:
        """The scan on the device in the frame it is drawn in (registered to its nearest
        template when aligning), and the centre the views turn about."""
        if self.aligner is None:
            cloud = on_device(points, self.device)
            return Placed(cloud, (cloud.amin(dim=0).double() + cloud.amax(dim=0)) / 2, drawn=self.denoised(cloud))
        index, moved = self.aligner.to_template_frame(points.astype(np.float64))
        return self.in_template(moved, index)

    def place_with_twins(self, points: np.ndarray) -> list[Placed]:
        """The scan placed, then its ``twins`` normal twins (:func:`normal_twin`: its points on
        the template's planes with their own noise rearranged), each placed as a scan is, so
        that each has its own cut of the template: the scan's cut has holes where a defect
        lifts it off the template, a normal scan's has none."""
        if self.aligner is None or self.reference_gap is None:
            raise ValueError("normal twins need an aligner and the template reference")
        index, moved = self.aligner.to_template_frame(points.astype(np.float64))
        placed = self.in_template(moved, index)
        cloud = on_device(moved, self.device)
        candidates, gaps = self._template_gaps(index, cloud)
        reference = _cut(candidates, gaps, self.reference_gap)
        twins = [normal_twin(cloud, reference, self.twin_smoothing, self.seed + twin) for twin in range(self.twins)]
        return [placed, *(self.in_template(twin.cpu().numpy(), index) for twin in twins)]


def _cut(candidates: torch.Tensor, gaps: torch.Tensor, gap: float) -> torch.Tensor:
    """The template points within ``gap`` scan spacings of the scan: its reference."""
    reference = candidates[gaps <= gap]
    # Fewer: the scan lies off its template (a failed match); compare with all of it.
    return candidates if len(reference) < MIN_REFERENCE_POINTS else reference


def warn_if_unlike_training(clouds: list[torch.Tensor], scans: Sequence[ScanLike], radius: float) -> None:
    """A scan much larger or smaller than the templates is likely another class or unit.

    Called from the detector's scoring two frames below ``score_many``: ``stacklevel``
    points the warning at the caller of ``score_many``.
    """
    radii = []
    for cloud in clouds:
        centre = (cloud.amin(dim=0).double() + cloud.amax(dim=0)) / 2
        radii.append((cloud.double() - centre).square().sum(dim=1).amax().sqrt())
    for scan, scan_radius in zip(scans, torch.stack(radii).tolist(), strict=True):
        ratio = scan_radius / radius
        if ratio > 1.5 or 0 < ratio < 0.2:  # 0: identical points, which rendering refuses
            name = getattr(scan, "path", None) or (scan if isinstance(scan, (str, Path)) else "scan")
            warnings.warn(
                f"{name}: object is {ratio:.2f}x the size of the training scans; it may not be "
                "of the class this detector was fitted on (or its units differ)",
                stacklevel=4,
            )
