"""Template-surface deviation: register a scan to the fused templates, score by distance.

Fit: the templates are registered onto the first and fused into one voxel-averaged
reference surface with a local plane per sample (:mod:`mvr3d.geometry.surface`). Score:
the scan is registered to its nearest template (pose search over rotations and centroid
positions, then point-to-plane ICP, :class:`~mvr3d.geometry.TemplateAligner`) and moved
into the fused frame. Each point's offset along the local plane normal of its nearest
reference sample is averaged over its ``smoothing_k`` nearest scan points (scanner noise
averages out, a dent or bump does not), and the result is divided by the scan's noise
level: "how many noise levels off the surface" (see "Noise units").

The pose search is denser than the aligner's default (200 random start rotations, the
432 best after 3 ICP iterations go on, 12 poses refined): on cycloidal of the
development seed, whose scans see 8-10 % of the gear, 2 of 20 good scans end with a
top-1 % template distance over 1.5x the one at their true pose instead of 5
(``benchmarks/registration_check.py --aligner``).

Location calibration (``location_scans``; off by default since the noise units became local,
see "Noise units"): a good scan's top deviations are
not alike everywhere on a part; places where the templates disagree or the shape is
hard deviate more on every good scan, so a scan's object score followed which side was
scanned (busted, 100 good scans of seed 3: Spearman +0.43 with the view direction's z;
+0.09 with the calibration). At fit time each template in turn is left out and cut into
``location_scans`` partial scans, what a scanner sees from directions spread over the
sphere (cut from the template moved onto its local planes, ``location_denoise``: one
scan's noise, not the stack of its merged scans'); each is registered to the other
templates (the fine stage of the pose search, from its pose known from the fit) and
scored against the fusion of the others. Those are normal scans met by templates they
were not made from, as test scans are; their scores, placed on the fused reference,
give each reference sample a mean and spread of normal scores
(:class:`~mvr3d.models.components.location_stats.LocationStats`), and a test point's
score becomes a z-score against them. Needs two templates or more; with one the
scores stay uncalibrated. On held-out seed 4 (100 good scans a class) the values of the
nuisance check at or above 0.3 fell from 8 to 4 of 60, accuracy within 0.2 (docs/accuracy.md);
with the planes, on held-out seed 5, 7 -> 6 of 60 and the largest abs(rho) 0.44 -> 0.34. With
local noise units it adds view dependences instead of removing them (development seed 3, 100 good
scans, largest abs(rho) of the six nuisances: busted 0.44 with the old units and calibration, 0.32
with local units and calibration, 0.25 with local units alone; fertility 0.42, 0.30 and 0.22), so
it is off by default; 16 was its default before.

Smoothing by area (``smoothing_spacing``): a scanner's density varies from scan to scan (the
preset's scans hold 40-120 k points) and across a scan (with the angle of incidence), and
``smoothing_k`` neighbours span three times the surface on a sparse scan as on a dense one.
A dense scan's smoothed deviations then kept more of the small-scale misfit between scan and
templates and good scans' object scores rose with their point count (positive on all 10
classes of held-out seed 5, up to +0.34). The neighbourhoods are therefore drawn from the
scan thinned to one point per ``smoothing_spacing`` (share of the part's diagonal) squared of
surface (:func:`~mvr3d.geometry.density.thinned_to_spacing`, densities measured on the
reference's planes); every point is still scored.

Coverage (``edge_reach``): templates merged from a few scans each leave places no template
saw (the walls deep in a gear's holes, seen only from near its axis), and a test scan that
sees one lies off the reference there by many sample spacings: on cycloidal of development seed 3 the
top-scoring good scans registered within 0.2 deg of the true pose had their top points 1.9 units
from any reference sample (spacing 0.12; diagonal 77), all of them scans from below. The reference's open
edges, samples whose neighbours lie to one side (:class:`~mvr3d.geometry.surface.OpenEdges`),
mark where coverage stops; scan points over ``edge_reach`` sample spacings outward past one
neither feed other points' smoothing nor count towards the object score. Their own point
scores stay (smoothed over the covered points next to them), so a defect reaching into such a
place still shows on the map. A bump over covered surface moves along the normal, not
outward in the plane, and a closed surface has no open edge, so neither is affected. On that
class (100 good scans): O-ROC 84.9 -> 87.6, P-ROC 98.1 either way, Spearman with the view's
z -0.42 -> -0.30 (zeroing those points instead cost 4 points of P-ROC).

Shared coverage (``shared_reach``): a place some template missed is still on the fused
reference, from the others, and no open edge marks it, but good scans that see it deviate more
there. On cycloidal of development seed 3 (100 good scans) the object score followed view z
(-0.33): the top 1 % points of scans from below lay low on the part and where fewer templates
reached (3.4 of 4 on average within 1.4 units, the part's diagonal being 77, against 4.0 from
above). Scan points whose nearest reference sample lies over ``shared_reach`` (12) sample
spacings from some template's points do not count towards the object score (their point scores
stay, as past open edges): 0.1 % of cycloidal's reference, 0.2 % of featuretype's and none of
the other 6 classes' of that seed. There cycloidal's view z went -0.33 -> +0.07 and its O-ROC
89.5 -> 90.7 (largest abs(rho) 0.17); featuretype's largest value is +0.26 (noise; +0.21
before), the other classes are unchanged. Held out on seed 8 (100 good scans): cycloidal's view
z -0.35 -> -0.01, featuretype's +0.30 -> +0.36 (docs/accuracy.md). Needs two templates or more.

Noise units (``scan_noise``): "planes" (default) divides each scan's deviations, less their
median, by the noise a ``smoothing_k``-point mean keeps, sqrt(scan noise^2 + template noise^2)
/ sqrt(smoothing_k). A scan's noise is the spread of its raw offsets about their local mean over
the 16 nearest points of each smoothing anchor (:func:`~mvr3d.geometry.surface.local_noise`), the
neighbours found among its points moved onto the reference's planes; the templates' noise is
measured the same way at fit time (the median over the templates), since the reference is
fused from them and a good scan's smoothed deviations hold their noise as well as its own.
"local" (the twelfth session's default; its checkpoints keep it) takes the scan's noise alone,
its neighbours among the points as scanned. There the noise picks the neighbours (points of like
offset lie closer), the more so the denser the scan, so the noise came out low on dense scans and
good scans' object scores rose with their point count (development seed 3, 100 good scans: +0.10
to +0.22 on all 8 classes; held-out seed 6: positive on all 10). On the planes that bias goes, but
the scan's noise alone then over-corrects: noisier scans scored lower (Spearman with the noise
level -0.30 to -0.38 on 4 of 8 classes); with the templates' noise added the values of the
nuisance check on that seed's 8 classes sum to 5.18 in abs(rho) against 5.95 (one >= 0.3 either
way), and on held-out seed 7 (10 classes) to 6.75 against 7.09, 3 values >= 0.3 against 4
(docs/accuracy.md). "spread" (before; old checkpoints) divides by
the robust spread of the smoothed deviations themselves (1.4826 x MAD) with that noise as a
floor (``noise_floor``), the noise then taken from the spread of the raw offsets over the
whole scan: both spreads hold the templates' misfit on the side that was scanned, so good
scans' object scores followed the view (development seed 3, 100 good scans: busted view z
+0.33 uncalibrated; the location calibration traded it for view x -0.44).

Twins (``null_twins``, off by default): templates merged from a few noisy scans each fit the part
worse where scanners sample it badly (featuretype's feature-laden upper face), so good scans from
that side score higher (docs/accuracy.md). A twin is the scan drawn on another surface
(:func:`~mvr3d.geometry.surface.normal_twin`: its points moved onto that surface's local planes,
then off them by the noise of a random neighbour): the scan's sampling, side and noise on a
normal part. The object score is the scan's less ``twin_weight`` x the mean object score of the
first k templates' twins, each over the points the scan's own object score counts; the point
scores stay the scan's. Each twin costs a scoring pass without registration. ``twin_mode``:

- "blend" (the default mode): the scan is drawn on the fused reference's planes and on template
  k's with the same noise draw, moved 1/sqrt(n-1) of the way from the first to the second
  (n templates), and scored against the fused reference as the scan is. With independent
  template errors a template less the fusion of all has (n-1)/n of a template's error variance
  and the fusion 1/n, so the twin carries a misfit of the size the fused reference's own is
  expected to have, where the scan looked. On development data (88-94 good scans) it lowered
  featuretype's view z (seed 8) from +0.35 to +0.13 and busted's (seed 3) from +0.32 to +0.17,
  every value below 0.3; held out on seed 13 it took featuretype's view z out (+0.24 -> -0.05)
  but brought in its view x and visible share (+0.34 / -0.34), where the scan's own score had
  no value at or above 0.3, so twins stay off.
- "leave_one_out": the scan drawn on template k (voxel-averaged as the fusion is) and scored
  against the fusion of the other templates. On development data it took out the scanned side
  (featuretype +0.35 -> -0.00, busted +0.33 -> -0.04), but on held-out seed 12 it traded the
  side for the scan's noise or point count on other classes (values >= 0.3: 2 -> 3): that
  twin's misfit, one template against a fusion of three, is larger than the fused reference's.

The smoothing was chosen on the development seed of the realistic ``standard`` preset
(``benchmarks/template_variants.py``, docs/accuracy.md): P-ROC 93.8 -> 99.5 on the
classes measured, O-ROC unchanged at 100.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from mvr3d.baselines.registration import aligner_arrays, restore_aligner
from mvr3d.errors import CheckpointError, InputError, ResourceError
from mvr3d.geometry import SurfaceReference, TemplateAligner, fuse_templates
from mvr3d.geometry.aligner import DENSE_POSE_SEARCH, SELECTION_CAP
from mvr3d.geometry.density import thinned_to_spacing
from mvr3d.geometry.joined import join_clouds, move_clouds
from mvr3d.geometry.neighbours import NeighbourIndex
from mvr3d.geometry.surface import (
    FUSED_VOXEL,
    anchor_points,
    fuse_placed,
    local_noise,
    normal_twin,
    project_to_planes,
    smoothed_offsets,
)
from mvr3d.geometry.sweep import swept_motions
from mvr3d.geometry.voxels import bounding_diagonal, voxel_downsample
from mvr3d.models.base import ArrayStateDetector
from mvr3d.models.components.location_stats import LocationStats
from mvr3d.models.components.scoring import MAD_TO_SIGMA, robust_standardise
from mvr3d.models.persistence import check_array
from mvr3d.models.registry import register_detector
from mvr3d.render.poses import fibonacci_directions
from mvr3d.render.visibility import visible_from
from mvr3d.scans import ScanScore, as_points, load_clouds, object_score
from mvr3d.utils import memory
from mvr3d.utils.parallel import host_map

logger = logging.getLogger(__name__)

# Surface spacing (share of the part's diagonal) the smoothing neighbourhoods are drawn at:
# coarser than the test scans of the realistic preset (median 0.0017-0.0031, the templates
# 0.0023 on busted of seed 3), so nearly every scan is thinned to the same density.
SMOOTHING_SPACING = 0.003
# Scan points over this many reference sample spacings past an open edge of the fused
# reference (where no template saw the part) are not scored: see "Coverage" in the module doc.
EDGE_REACH = 3.0
# Scan points whose nearest reference sample lies over this many sample spacings from some
# template's points are not scored either: see "Shared coverage" in the module doc.
SHARED_REACH = 12.0
# How a scan's deviations are put in noise units (see "Noise units" in the module doc).
SCAN_NOISE = ("planes", "local", "spread")
# Scan points whose noise a twin point borrows: the one of them drawn at random (see "Twins").
TWIN_SMOOTHING = 32
# How a twin is drawn and scored (see "Twins").
TWIN_MODES = ("blend", "leave_one_out")


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@register_detector("template")
class TemplateDetector(ArrayStateDetector):
    """Distance to the fused template surface in robust noise units per scan."""

    calibrate_posed = True  # it finds each scan's pose, so calibration views come in random poses

    # Saved before smoothing existed (off), before anchored smoothing (exact), or before
    # the dense pose search (the aligner's sparse default).
    legacy_params = {"smoothing_k": 0, "anchor_stride": 1, "random_rotations": 24, "keep_poses": 4, "survivors": 0,
                     "noise_floor": False, "location_scans": 0, "location_denoise": 0, "smoothing_spacing": 0.0,
                     "pose_sweep": 0.0, "edge_reach": 0.0, "anchored_density": False, "scan_noise": "spread",
                     "shared_reach": 0.0, "null_twins": 0, "twin_weight": 1.0,
                     "twin_mode": "leave_one_out"}

    def __init__(self, seed: int = 0, top_fraction: float = 0.01, standardise: bool = True,
                 device: str | torch.device | None = None, smoothing_k: int = 256, anchor_stride: int = 16,
                 random_rotations: int = DENSE_POSE_SEARCH["n_random"], keep_poses: int = DENSE_POSE_SEARCH["keep_best"],
                 survivors: int = DENSE_POSE_SEARCH["survivors"], noise_floor: bool = True,
                 location_scans: int = 0, location_neighbours: int = 64, location_denoise: int = 32,
                 smoothing_spacing: float = SMOOTHING_SPACING, pose_sweep: float = 0.0,
                 edge_reach: float = EDGE_REACH, anchored_density: bool = True, scan_noise: str = "planes",
                 shared_reach: float = SHARED_REACH, null_twins: int = 0, twin_weight: float = 1.0,
                 twin_mode: str = "blend") -> None:
        if smoothing_k < 0:
            raise InputError(f"smoothing_k must be 0 (off) or a number of neighbours, got {smoothing_k}")
        if anchor_stride < 1:
            raise InputError(f"anchor_stride must be 1 (exact smoothing) or more, got {anchor_stride}")
        if random_rotations < 0 or keep_poses < 1 or survivors < 0:
            raise InputError("random_rotations and survivors must be >= 0 and keep_poses >= 1, got "
                             f"{random_rotations}, {survivors} and {keep_poses}")
        if location_scans < 0 or location_neighbours < 1:
            raise InputError("location_scans must be 0 (off) or more and location_neighbours 1 or more, got "
                             f"{location_scans} and {location_neighbours}")
        if location_denoise != 0 and location_denoise < 3:
            raise InputError(f"location_denoise must be 0 (off) or 3 or more (a plane needs 3 points), got {location_denoise}")
        if not (math.isfinite(smoothing_spacing) and smoothing_spacing >= 0):
            raise InputError(f"smoothing_spacing must be 0 (off) or a share of the part's diagonal, got {smoothing_spacing}")
        if not (math.isfinite(pose_sweep) and pose_sweep >= 0):
            raise InputError(f"pose_sweep must be 0 (off) or a step in degrees, got {pose_sweep}")
        if not (math.isfinite(edge_reach) and edge_reach >= 0):
            raise InputError(f"edge_reach must be 0 (off) or a number of reference sample spacings, got {edge_reach}")
        if not (math.isfinite(shared_reach) and shared_reach >= 0):
            raise InputError(f"shared_reach must be 0 (off) or a number of reference sample spacings, got {shared_reach}")
        if null_twins < 0 or not (math.isfinite(twin_weight) and twin_weight > 0):
            raise InputError("null_twins must be 0 (off) or a number of templates and twin_weight a number > 0, got "
                             f"{null_twins} and {twin_weight}")
        if twin_mode not in TWIN_MODES:
            raise InputError(f"twin_mode must be one of {', '.join(TWIN_MODES)}, got {twin_mode!r}")
        if null_twins and location_scans:
            raise InputError("null_twins and location_scans cannot be combined: the twins are compared with the "
                             "scan's own scores, before the location statistics would rescale them")
        if scan_noise not in SCAN_NOISE:
            raise InputError(f"scan_noise must be one of {', '.join(SCAN_NOISE)}, got {scan_noise!r}")
        self.seed = seed
        self.top_fraction = top_fraction
        self.standardise = standardise
        self.smoothing_k = smoothing_k
        self.anchor_stride = anchor_stride
        self.random_rotations = random_rotations
        self.keep_poses = keep_poses
        self.survivors = survivors
        self.noise_floor = noise_floor
        self.location_scans = location_scans
        self.location_neighbours = location_neighbours
        self.location_denoise = location_denoise
        self.smoothing_spacing = smoothing_spacing
        self.pose_sweep = pose_sweep
        self.edge_reach = edge_reach
        self.anchored_density = bool(anchored_density)
        self.scan_noise = scan_noise
        self.shared_reach = shared_reach
        self.null_twins = int(null_twins)
        self.twin_weight = float(twin_weight)
        self.twin_mode = twin_mode
        self.device = torch.device(device) if device is not None else default_device()
        self.aligner_: TemplateAligner | None = None
        self.reference_: SurfaceReference | None = None
        self.location_: LocationStats | None = None
        self.template_noise_: float | None = None  # scan_noise "planes": the templates' noise (module doc)
        self.shared_: torch.Tensor | None = None  # per reference sample: near every template's points
        # (template k, the fusion of the others for "leave_one_out"), placed in the fused frame
        self.twins_: list[tuple[torch.Tensor, SurfaceReference | None]] = []

    @property
    def score_batch(self) -> int:  # type: ignore[override]  # by device, not per class
        """Scans registered in one batch: on one H100, 32 -> 64 scans a call lifted objects/s
        from 19.2 to 20.9 with 3.4 GiB of GPU memory at its peak (benchmarks/
        throughput_template_cuda.md; 8 -> 32 had lifted it by a third). A CPU gains nothing
        from batching and holds ~100 MB per 100 k-point scan, so it takes 32."""
        return 64 if self.device.type != "cpu" else 32

    @property
    def diagonal_(self) -> float:
        """Bounding-box diagonal of the fused reference: the part's size, the unit of
        ``smoothing_spacing``."""
        points = self.reference_.points
        return float((points.amax(dim=0) - points.amin(dim=0)).norm())

    @property
    def is_fitted(self) -> bool:
        return self.aligner_ is not None and self.reference_ is not None

    def fit(self, scans: Iterable[object], progress: bool = True) -> TemplateDetector:
        clouds = load_clouds(scans)
        self.aligner_ = self._aligner().fit(clouds, progress=progress)
        anchor = TemplateAligner(seed=self.seed, device=self.device).fit(clouds[:1])
        self.reference_ = fuse_templates(clouds, lambda points: anchor.pose(points)[1:], device=self.device)
        placed = [self.reference_.from_template(j, np.asarray(cloud, dtype=np.float64)) for j, cloud in enumerate(clouds)]
        self.template_noise_ = self._template_noise(placed) if self.scan_noise == "planes" else None
        self.shared_ = self._shared_samples(placed) if self.shared_reach > 0 and len(clouds) > 1 else None
        self.location_ = self._location_stats(clouds, placed) if self.location_scans and len(clouds) > 1 else None
        self.twins_ = self._twin_references(placed, FUSED_VOXEL * bounding_diagonal(np.asarray(clouds[0])))
        return self

    def _twin_references(self, placed: list[np.ndarray], voxel: float
                         ) -> list[tuple[torch.Tensor, SurfaceReference | None]]:
        """For the first ``null_twins`` templates (``placed`` on the fused reference; module
        doc, "Twins"): "blend", the template as placed; "leave_one_out", the template
        voxel-averaged as the fusion is and the fusion of the other templates. None with a
        single template."""
        if len(placed) < 2:
            return []
        twins: list[tuple[torch.Tensor, SurfaceReference | None]] = []
        for k in range(min(self.null_twins, len(placed))):
            if self.twin_mode == "blend":
                twins.append((torch.from_numpy(np.asarray(placed[k], dtype=np.float64)).to(self.device), None))
                continue
            shape = torch.from_numpy(voxel_downsample(placed[k], voxel)[0]).to(self.device)
            others = fuse_placed([cloud for j, cloud in enumerate(placed) if j != k], voxel, device=self.device)
            twins.append((shape, others))
        return twins

    def _template_noise(self, placed: list[np.ndarray]) -> float:
        """The templates' scanner noise, measured as a scan's is (``scan_noise`` "planes"), each
        template ``placed`` on the fused reference; the median over the templates."""
        joined, sizes = join_clouds(placed, self.device)
        signed, normals, _ = self.reference_.signed_distance(joined)
        anchors = [anchor_points(cloud, self.anchor_stride, self.seed) for cloud in placed]
        planar = joined.to(signed.device) - signed[:, None] * normals
        noise = _planar_noise(planar, signed, normals, sizes, anchors)
        return float(noise.median())

    def _shared_samples(self, placed: list[np.ndarray]) -> torch.Tensor:
        """Whether each reference sample lies within ``shared_reach`` sample spacings of every
        template's points (``placed`` on the fused reference; module doc, "Shared coverage")."""
        samples = self.reference_.points
        reach = self.shared_reach * self.reference_.open_edges.spacing
        shared = torch.ones(len(samples), dtype=torch.bool, device=samples.device)
        for template in placed:
            distance = NeighbourIndex(torch.from_numpy(template).to(samples.device)).query(samples, 1)[0][:, 0]
            shared &= distance.to(samples.device) <= reach
        return shared

    def _location_stats(self, clouds: list[np.ndarray], placed: list[np.ndarray]) -> LocationStats:
        """Each reference sample's mean and spread of the scores of normal partial scans,
        each template's registered to the other templates and scored against their fusion
        (module doc; ``placed``: the templates on the fused reference). Every template's pose on
        the others is known from the fit, so a scan needs only the fine stage of registration,
        not the pose search."""
        stats = LocationStats([self.reference_.points], self.location_neighbours)
        voxel = FUSED_VOXEL * bounding_diagonal(np.asarray(clouds[0]))
        directions = fibonacci_directions(self.location_scans).numpy()
        for left_out, template in enumerate(placed):
            others = [j for j in range(len(placed)) if j != left_out]
            points = self._one_layer(template)
            reference = fuse_placed([placed[j] for j in others], voxel, device=self.device)
            centre = (points.min(axis=0) + points.max(axis=0)) / 2
            radius = float(np.linalg.norm(points - centre, axis=1).max())
            seen = [visible_from(points, direction, centre=centre, radius=radius, device=self.device)
                    for direction in directions]
            starts = [self._from_reference(j) for j in others]
            for first in range(0, len(seen), self.score_batch):
                scans = [points[kept] for kept in seen[first : first + self.score_batch]]
                joined, sizes = join_clouds(scans, self.device)
                anchors = host_map(lambda scan: anchor_points(scan, self.anchor_stride, self.seed), scans)
                poses = self.aligner_.refine_from(joined, sizes, [starts] * len(scans))
                moved = move_clouds(joined, sizes, *zip(*[self._to_reference(pose) for pose in poses], strict=True))
                deviations, floors, _, _ = self._offsets(reference, moved, sizes, anchors, shared=None)
                values = self._standardised(deviations, floors).split(sizes)
                for scan, value in zip(scans, values, strict=True):
                    stats.add(0, self.reference_.nearest(scan), value)
        return stats.finish()

    def _one_layer(self, template: np.ndarray) -> np.ndarray:
        """A merged template's points moved onto their local planes (``location_denoise``
        neighbours). A template stacks the noise of the many scans it was merged from, in as
        many directions; a test scan has one scan's. Cut from the raw template, the simulated
        scans' spread followed that stacking, not the place: on seed 3, fertility's good
        scans' object scores then fell with the view's height (Spearman -0.45; -0.19 cut from
        the projected points, busted +0.09 -> -0.04; docs/accuracy.md)."""
        if self.location_denoise == 0:
            return template
        points = torch.from_numpy(np.ascontiguousarray(template)).to(self.device)
        return project_to_planes(points, self.location_denoise).cpu().numpy()

    def _from_reference(self, template: int) -> tuple[int, np.ndarray, np.ndarray]:
        """The rigid motion from the fused frame into template ``template``'s, as a pose."""
        rotation, shift = self.reference_.transforms[template]
        return template, rotation.T, -shift @ rotation

    def _aligner(self) -> TemplateAligner:
        return TemplateAligner(seed=self.seed, device=self.device, n_random=self.random_rotations,
                               keep_best=self.keep_poses, survivors=self.survivors)

    def point_deviation(self, points: np.ndarray) -> torch.Tensor:
        """Each point's distance to the fused surface, smoothed over ``smoothing_k`` scan
        neighbours, in the scan's own units (float32)."""
        return self.point_deviations([points])[0]

    def point_deviations(self, clouds: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """:meth:`point_deviation` of several scans: their pose searches run as one batch
        and their distances to the fused surface as one query."""
        return self._deviations(clouds)[0]

    def _point_values(self, values: torch.Tensor, nearest: torch.Tensor) -> torch.Tensor:
        """All scans' standardised deviations joined, as z-scores against the location
        statistics when fitted."""
        return values if self.location_ is None else self.location_.standardise(0, nearest, values)

    def _object(self, values: torch.Tensor, inside: torch.Tensor) -> float:
        """A scan's object score: the top ``top_fraction`` of the point scores the templates cover."""
        scores, inside = values.float().cpu().numpy(), inside.cpu().numpy()
        # The verdict rests on what the templates cover; the map still shows every point.
        return object_score(scores[inside] if inside.any() else scores, "top1", self.top_fraction)

    def _twin_objects(self, clouds: Sequence[np.ndarray], moved: torch.Tensor, sizes: list[int],
                      anchors: Sequence[torch.Tensor | None], covered: list[torch.Tensor]) -> list[float]:
        """Each scan's object score as a normal twin, the mean over the twins (module doc, "Twins"),
        over the points the scan's own object score counts (``covered``) that the twin's
        reference covers too."""
        totals = np.zeros(len(sizes))
        scans = moved.split(sizes)
        fused = self._drawn_on(scans, clouds, self.reference_.points, 0) if self.twin_mode == "blend" else None
        for k, (shape, others) in enumerate(self.twins_):
            if fused is None:
                twins, reference, shared = self._drawn_on(scans, clouds, shape, k), others, None
            else:
                # The same noise draw on both, so the twin differs from the fused one by misfit alone.
                twins = fused + self.twin_blend_ * (self._drawn_on(scans, clouds, shape, 0) - fused)
                reference, shared = self.reference_, self.shared_
            deviations, floors, _, reached = self._offsets(reference, twins, sizes, anchors, shared=shared, keys=clouds)
            values = self._standardised(deviations, floors).split(sizes)
            for i, (value, inside, near) in enumerate(zip(values, covered, reached, strict=True)):
                totals[i] += self._object(value, inside.to(near.device) & near)
        return list(totals / len(self.twins_))

    def _drawn_on(self, scans: Sequence[torch.Tensor], clouds: Sequence[np.ndarray], surface: torch.Tensor,
                  draw: int) -> torch.Tensor:
        """The scans (in the fused frame) drawn on ``surface``'s planes, joined; the noise draw
        hangs on the scans' coordinates as read, so the twin does not depend on the points' order."""
        surface = surface.to(scans[0].device)
        return torch.cat([normal_twin(scan, surface, TWIN_SMOOTHING, self.seed + draw, keys=cloud)
                          for scan, cloud in zip(scans, clouds, strict=True)])

    @property
    def twin_blend_(self) -> float:
        """How far a blend twin moves from the fused reference's planes to template k's:
        1/sqrt(n-1) of n templates (module doc, "Twins")."""
        return 1.0 / math.sqrt(max(len(self.reference_.transforms), 2) - 1)

    def _standardised(self, deviations: list[torch.Tensor], floors: torch.Tensor) -> torch.Tensor:
        """All scans' deviations joined, in noise units of each scan when ``standardise``."""
        merged = torch.cat(deviations)
        if not self.standardise:
            return merged
        if self.scan_noise in ("planes", "local"):
            tiny = torch.finfo(torch.float32).tiny ** 0.5
            return torch.cat([(piece.float() - piece.float().median()) / floor.float().clamp_min(tiny)
                              for piece, floor in zip(deviations, floors, strict=True)])
        # Without the floor a scan's spread is that of its smoothed deviations alone, which
        # the smoothing strips of most scanner noise: the noise left in the tail then
        # raised noisy scans' scores (good scans' object scores followed the noise level,
        # Spearman +0.45 on 3 of 10 classes over 3 seeds; docs/accuracy.md).
        return robust_standardise(merged, [len(piece) for piece in deviations], floors if self.noise_floor else None)

    def _deviations(self, clouds: Sequence[np.ndarray]) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor,
                                                                  list[torch.Tensor]]:
        """Each scan registered into the fused frame, then :meth:`_offsets` against the fused
        reference."""
        return self._offsets(self.reference_, *self._registered(clouds), shared=self.shared_,
                             keys=[np.asarray(points) for points in clouds])

    def _registered(self, clouds: Sequence[np.ndarray]) -> tuple[torch.Tensor, list[int], list[torch.Tensor | None]]:
        """The scans moved into the fused frame, joined, with their sizes and smoothing anchors."""
        self.check_is_fitted()
        clouds = [np.asarray(points) for points in clouds]
        joined, sizes = join_clouds(clouds, self.device)
        with ThreadPoolExecutor(max_workers=1) as helper:
            # Host work that needs no pose runs while the accelerator registers the scans.
            anchors = helper.submit(host_map, lambda cloud: anchor_points(cloud, self.anchor_stride, self.seed), clouds)
            poses = self.aligner_.pose_joined(joined, sizes)
            anchors = anchors.result()
        motions = [self._to_reference(pose) for pose in poses]
        if self.pose_sweep > 0:
            motions = swept_motions(clouds, motions, self.reference_, self.pose_sweep, self.aligner_.voxel_,
                                    self.aligner_.trim, SELECTION_CAP * self.aligner_.voxel_, self.seed)
        return move_clouds(joined, sizes, *zip(*motions, strict=True)), sizes, anchors

    def _offsets(self, reference: SurfaceReference, moved: torch.Tensor, sizes: list[int],
                 anchors: Sequence[torch.Tensor | None], shared: torch.Tensor | None,
                 keys: Sequence[np.ndarray] | None = None
                 ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Smoothed deviations from ``reference`` of each scan (joined in ``moved``, in the
        reference's frame); each scan's noise unit, the noise a ``smoothing_k``-point mean
        keeps (module doc, "Noise units"); every point's nearest reference sample; and each
        scan's points that the reference covers (not past its open edges by ``edge_reach``:
        module doc, "Coverage"; with ``shared``, per sample of ``reference``, only near every
        template: "Shared coverage"). ``keys``: the scans as read, on which the thinning's draw
        hangs (see :func:`thinned_to_spacing`); without them it hangs on the moved points, so
        the same scan in another point order can score differently."""
        signed, normals, nearest = reference.signed_distance(moved)
        moved = moved.to(signed.device)
        spacing = self.smoothing_spacing * self.diagonal_
        sources: list[torch.Tensor | None] = [None] * len(sizes)
        planar = moved - signed[:, None] * normals  # on the reference's planes
        if self.smoothing_k > 1 and spacing > 0:
            # Measured on the planes: scanner noise would pass for sparser sampling.
            sources = thinned_to_spacing(planar.split(sizes), normals.split(sizes), spacing, self.seed,
                                         anchors if self.anchored_density else None, keys)
        beyond = torch.zeros(len(moved), dtype=torch.bool, device=signed.device)
        if self.edge_reach > 0:
            beyond = reference.beyond_edges(moved, nearest, self.edge_reach).to(signed.device)
            sources = [_supported(pool, outside) for pool, outside in zip(sources, beyond.split(sizes), strict=True)]
        smoothed = smoothed_offsets(moved.split(sizes), signed.split(sizes), normals.split(sizes), self.smoothing_k,
                                    anchors, sources)
        if self.scan_noise == "planes":
            if self.template_noise_ is None:
                raise InputError("scan_noise 'planes' needs the templates' noise, measured by fit(): this "
                                 "detector was fitted with another scan_noise; fit it again")
            # The reference is as uncertain as the templates it was fused from: alone, the scan's
            # noise made noisier scans score lower (module doc, "Noise units").
            floors = torch.hypot(_planar_noise(planar, signed, normals, sizes, anchors),
                                 torch.tensor(self.template_noise_, dtype=torch.float64, device=signed.device))
        elif self.scan_noise == "local":
            floors = local_noise(moved.split(sizes), signed.split(sizes), normals.split(sizes), anchors)
        else:
            floors = torch.stack([(piece - piece.median()).abs().median() for piece in signed.split(sizes)])
            floors = floors * MAD_TO_SIGMA
        floors = floors / max(self.smoothing_k, 1) ** 0.5
        counted = ~beyond
        if shared is not None:
            counted &= shared[nearest].to(counted.device)
        return [offset.float() for offset in smoothed], floors, nearest, list(counted.split(sizes))

    def _to_reference(self, pose: tuple[int, np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The rigid motion (R, t) from a scan to the fused reference's frame: its pose onto
        template j, then template j's motion into the fused frame."""
        template, rotation, shift = pose
        if not self.reference_.transforms:
            return rotation, shift
        onward, offset = self.reference_.transforms[template]
        return onward @ rotation, shift @ onward.T + offset

    def score(self, scan: object) -> ScanScore:
        return self.score_many([scan])[0]

    def score_many(self, scans: Sequence[object]) -> list[ScanScore]:
        """Every scan's score; a batch that runs out of memory (other processes on the same
        GPU) is scored in halves, and a single scan that does gets a ResourceError."""
        points = [as_points(scan) for scan in scans]
        if not points:
            return []
        try:
            return self._score_clouds(points)
        except (MemoryError, RuntimeError) as error:
            if not memory.is_out_of_memory(error):
                raise
            if len(points) == 1:
                raise ResourceError(
                    f"scoring a {len(points[0]):,}-point scan ran out of memory on {self.device}; free memory there "
                    "(other processes may hold it) or score on the CPU (--device cpu)") from error
        # Outside the handler, so the failed attempt's tensors are freed before the halves run.
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        logger.warning("out of memory scoring %d scans together on %s: scoring them in halves", len(points), self.device)
        half = len(points) // 2
        return self.score_many(points[:half]) + self.score_many(points[half:])

    def _score_clouds(self, points: list[np.ndarray]) -> list[ScanScore]:
        moved, sizes, anchors = self._registered(points)
        deviations, floors, nearest, covered = self._offsets(self.reference_, moved, sizes, anchors, self.shared_,
                                                             keys=points)
        values = self._point_values(self._standardised(deviations, floors), nearest).split(sizes)
        objects = [self._object(value, inside) for value, inside in zip(values, covered, strict=True)]
        if self.twins_:
            nulls = self._twin_objects(points, moved, sizes, anchors, covered)
            objects = [value - self.twin_weight * null for value, null in zip(objects, nulls, strict=True)]
        return [ScanScore(value.float().cpu().numpy(), score, 1.0) for value, score in zip(values, objects, strict=True)]

    # ------------------------------------------------------------- persistence
    def state_arrays(self) -> dict[str, np.ndarray]:
        """The aligner's templates, the fused reference samples (their local planes are
        rebuilt from them), each template's motion into the fused frame and the location
        statistics (when fitted)."""
        transforms = self.reference_.transforms
        location = {} if self.location_ is None else self.location_.state("location")
        return {
            **aligner_arrays(self.aligner_, "aligner."),
            "reference.points": self.reference_.points.cpu().numpy(),
            "reference.rotations": np.stack([np.asarray(r, dtype=np.float64) for r, _ in transforms]),
            "reference.shifts": np.stack([np.asarray(t, dtype=np.float64) for _, t in transforms]),
            **{name: value.numpy() for name, value in location.items()},
            **({} if self.template_noise_ is None else {"template_noise": np.array([self.template_noise_])}),
            **({} if self.shared_ is None else {"reference.shared": self.shared_.cpu().numpy().astype(np.float32)}),
            **{f"twin.template.{k}": shape.cpu().numpy() for k, (shape, _) in enumerate(self.twins_)},
            **{f"twin.others.{k}": others.points.cpu().numpy()
               for k, (_, others) in enumerate(self.twins_) if others is not None},
        }

    def restore_state(self, arrays: dict[str, np.ndarray], path: Path) -> None:
        aligner = self._aligner()
        count = restore_aligner(aligner, arrays, path, "aligner.")
        points = check_array(arrays, "reference.points", (None, 3), path)
        rotations = check_array(arrays, "reference.rotations", (count, 3, 3), path)
        shifts = check_array(arrays, "reference.shifts", (count, 3), path)
        if len(points) < 2:
            raise CheckpointError(f"{path}: array 'reference.points' needs at least 2 points")
        reference = SurfaceReference(points, device=self.device)
        reference.transforms = list(zip(rotations, shifts, strict=True))
        location = {name: torch.from_numpy(check_array(arrays, name, (len(points),), path, np.float32))
                    for name in ("location.mean.0", "location.spread.0") if name in arrays}
        if len(location) == 1:
            raise CheckpointError(f"{path}: the location statistics need both 'location.mean.0' and 'location.spread.0'")
        self.aligner_, self.reference_ = aligner, reference
        self.location_ = LocationStats.from_state(location, "location", [reference.points])
        self.template_noise_ = _restored_template_noise(arrays, path) if self.scan_noise == "planes" else None
        self.shared_ = _restored_shared(arrays, path, len(points), self.device) if "reference.shared" in arrays else None
        if self.shared_ is None and self.shared_reach > 0 and count > 1:
            raise CheckpointError(f"{path}: shared_reach {self.shared_reach} needs the array 'reference.shared'")
        self.twins_ = self._restored_twins(arrays, path, count)

    def _restored_twins(self, arrays: dict[str, np.ndarray], path: Path, templates: int
                        ) -> list[tuple[torch.Tensor, SurfaceReference | None]]:
        expected = min(self.null_twins, templates) if templates > 1 else 0
        twins: list[tuple[torch.Tensor, SurfaceReference | None]] = []
        for k in range(expected):
            names = [f"twin.template.{k}"] + ([f"twin.others.{k}"] if self.twin_mode == "leave_one_out" else [])
            if any(name not in arrays for name in names):
                wanted = " and ".join(f"'{name}'" for name in names)
                raise CheckpointError(f"{path}: null_twins {self.null_twins} (twin_mode {self.twin_mode}) needs "
                                      f"the arrays {wanted} (template {k}"
                                      f"{' and the fusion of the other templates' if len(names) > 1 else ''})")
            clouds = [check_array(arrays, name, (None, 3), path) for name in names]
            if any(len(cloud) < 2 for cloud in clouds):
                raise CheckpointError(f"{path}: arrays {', '.join(names)} need at least 2 points each")
            others = SurfaceReference(clouds[1], device=self.device) if len(clouds) > 1 else None
            twins.append((torch.from_numpy(np.asarray(clouds[0], dtype=np.float64)).to(self.device), others))
        return twins


def _planar_noise(planar: torch.Tensor, signed: torch.Tensor, normals: torch.Tensor, sizes: list[int],
                  anchors: Sequence[torch.Tensor | None]) -> torch.Tensor:
    """Each scan's :func:`local_noise` with its neighbours found among its points moved onto the
    reference's planes (``planar``), where the noise does not pick them: among the points as
    scanned it does, the more so the denser the scan."""
    return local_noise(planar.split(sizes), signed.split(sizes), normals.split(sizes), anchors)


def _restored_template_noise(arrays: dict[str, np.ndarray], path: Path) -> float:
    if "template_noise" not in arrays:
        raise CheckpointError(f"{path}: scan_noise 'planes' needs the array 'template_noise' (the templates' noise)")
    noise = check_array(arrays, "template_noise", (1,), path, np.float64)
    if not (np.isfinite(noise[0]) and noise[0] >= 0):
        raise CheckpointError(f"{path}: array 'template_noise' must hold one finite value >= 0, got {noise[0]}")
    return float(noise[0])


def _restored_shared(arrays: dict[str, np.ndarray], path: Path, samples: int, device: torch.device) -> torch.Tensor:
    shared = check_array(arrays, "reference.shared", (samples,), path, np.float32)
    if not np.isin(shared, (0.0, 1.0)).all():
        raise CheckpointError(f"{path}: array 'reference.shared' must hold 0 or 1 for each reference sample")
    return torch.from_numpy(shared > 0.5).to(device)


def _supported(pool: torch.Tensor | None, outside: torch.Tensor) -> torch.Tensor | None:
    """The indices of ``pool`` (None: every point) whose point is not ``outside``; the pool
    unchanged when that would leave none."""
    if not bool(outside.any()):
        return pool
    indices = torch.arange(len(outside), device=outside.device) if pool is None else pool.to(outside.device)
    kept = indices[~outside[indices]]
    return kept if len(kept) else pool
