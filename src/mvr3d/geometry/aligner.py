"""Register scans to the nearest of a few complete templates of one part.

At fit the templates are voxel-downsampled and centred. A scan is matched against every
template from a set of candidate poses (24 cube rotations plus seeded random ones, each
from several centroid positions); all candidates run a few trimmed point-to-plane ICP
iterations at once, the best few are refined on more points, and the template + pose
with the smallest capped mean distance wins. Trimming and capping matter because scans
are partial views of complete templates.

Shared by the registration and template baselines and by MVR's scan placement, so it
sits below all of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from mvr3d.errors import CheckpointError, InputError
from mvr3d.geometry.field import ClosestPointField
from mvr3d.geometry.icp import candidate_rotations, icp_batch, start_shifts, to_tensor
from mvr3d.geometry.joined import cloud_means, join_clouds, voxel_downsample_joined
from mvr3d.geometry.neighbours import NeighbourIndex
from mvr3d.geometry.normals import estimate_normals
from mvr3d.geometry.voxels import bounding_diagonal, voxel_downsample

# Poses are ranked by the mean of min(distance, this many template voxels) over all points.
SELECTION_CAP = 10.0
# The pose search runs on a grid this many template voxels wide: far-off candidate poses
# query many points, and a small cloud keeps that fast.
COARSE_VOXELS = 4
# The pose search looks up nearest coarse-template points in a closest-point field of this
# many template voxels per cell, over the template's box widened by this share of its
# diagonal on each side.
FIELD_CELL_VOXELS = 2
FIELD_MARGIN = 0.25
# The denser pose search of the template method (benchmarks/registration_check.py --aligner):
# many more start rotations, cheap screening of all of them, more poses refined. On dev
# cycloidal it halved the misregistered good scans; the aligner's own defaults stay sparse.
DENSE_POSE_SEARCH = {"n_random": 200, "keep_best": 12, "survivors": 432}


class Pose(NamedTuple):
    """A refined candidate: capped mean residual, coarse rank, template, R (3, 3), t (3,)."""

    residual: float
    rank: int
    template: int
    rotation: Tensor
    translation: Tensor


class TemplateAligner:
    """Best-matching template and rigid pose of a scan; fitted state is public.

    Fitted attributes: ``voxel_`` (template voxel size), ``centred_`` and ``offsets_``
    (each downsampled template is ``centred_[j] + offsets_[j]``, float64 numpy), and what
    is derived from them on ``device``: ``templates_`` (NeighbourIndex of the centred
    clouds), ``joined_`` and ``joined_normals_`` (all of them in one grouped index, for fine
    ICP of every scan's candidates at once), ``coarse_templates_`` (ClosestPointField of
    coarser ones, for the pose search), ``normals_`` / ``coarse_normals_`` and ``shifts_``
    (start positions). Persist with
    :meth:`state_dict` plus ``voxel_``; rebuild with :meth:`from_state`.
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
        seed: int = 0,
        device: str | torch.device = "cpu",
        shift_candidates: int = 8,
        survivors: int = 0,
        screen_iterations: int = 3,
    ) -> None:
        if not voxel_size_ratio > 0:
            raise InputError(f"voxel_size_ratio must be positive, got {voxel_size_ratio}")
        if not 0 < trim <= 1:
            raise InputError(f"trim must be in (0, 1], got {trim}")
        self.voxel_size_ratio = voxel_size_ratio
        self.coarse_points = coarse_points
        self.fine_points = fine_points
        self.n_random = n_random
        self.coarse_iterations = coarse_iterations
        self.fine_iterations = fine_iterations
        self.keep_best = keep_best
        self.trim = trim
        self.seed = seed
        self.shift_candidates = shift_candidates
        self.survivors = survivors
        self.screen_iterations = screen_iterations
        self.device = torch.device(device)
        self.voxel_: float | None = None
        self.offsets_: list[np.ndarray] = []
        self.centred_: list[np.ndarray] = []
        self.templates_: list[NeighbourIndex] = []
        self.joined_: NeighbourIndex | None = None
        self.joined_normals_: Tensor | None = None
        self.coarse_templates_: list[ClosestPointField] = []
        self.normals_: list[Tensor] = []
        self.coarse_normals_: list[Tensor] = []
        self.shifts_: list[Tensor] = []

    def params(self) -> dict[str, float | int]:
        """Constructor arguments other than ``device``: enough to rebuild an equal aligner."""
        names = ("voxel_size_ratio", "coarse_points", "fine_points", "n_random", "coarse_iterations",
                 "fine_iterations", "keep_best", "trim", "seed", "shift_candidates", "survivors", "screen_iterations")
        return {name: getattr(self, name) for name in names}

    @property
    def fitted(self) -> bool:
        return self.voxel_ is not None

    @property
    def references(self) -> list[Tensor]:
        """The centred templates (float64, on ``device``) that poses and matches refer to."""
        return [index.reference for index in self.templates_]

    # ------------------------------------------------------------------ fitting
    def fit(self, templates: Sequence[np.ndarray], progress: bool = False) -> TemplateAligner:
        """Downsample and centre complete template clouds; one voxel size for all, from
        their median diagonal, so that partial scans are sampled alike."""
        clouds = [np.asarray(c, dtype=np.float64) for c in templates]
        if not clouds:
            raise InputError("the aligner needs at least one template")
        voxel = self.voxel_size_ratio * float(np.median([bounding_diagonal(c) for c in clouds]))
        sampled = [voxel_downsample(c, voxel)[0] for c in tqdm(clouds, desc="templates", disable=not progress)]
        offsets = [s.mean(axis=0) for s in sampled]
        return self.set_templates([s - o for s, o in zip(sampled, offsets, strict=True)], offsets, voxel)

    def set_templates(self, centred: list[np.ndarray], offsets: list[np.ndarray], voxel: float) -> TemplateAligner:
        """Index templates already downsampled and centred (``template = centred + offset``);
        everything else is derived from them, so a saved aligner rebuilds identically."""
        self.voxel_ = float(voxel)
        self.offsets_ = [np.asarray(o, dtype=np.float64) for o in offsets]
        self.centred_ = [np.asarray(c, dtype=np.float64) for c in centred]
        # Fine ICP queries every scan's candidate poses against these at each iteration: on an
        # accelerator a cell grid beats brute force even for small templates.
        self.templates_ = [NeighbourIndex(self._tensor(c), grid=True) for c in self.centred_]
        coarse = [voxel_downsample(c, COARSE_VOXELS * self.voxel_)[0] for c in self.centred_]
        self.coarse_templates_ = [self._field(c) for c in coarse]
        self.normals_ = [self._tensor(estimate_normals(c)) for c in self.centred_]
        self.joined_ = NeighbourIndex(torch.cat(self.references), grid=True, sizes=[len(c) for c in self.centred_])
        self.joined_normals_ = torch.cat(self.normals_)
        self.coarse_normals_ = [self._tensor(estimate_normals(c)) for c in coarse]
        self.shifts_ = [self._tensor(start_shifts(c, self.shift_candidates)) for c in coarse]
        return self

    # -------------------------------------------------------------- persistence
    def state_dict(self) -> dict[str, Tensor]:
        """``centred.{j}`` and ``offset.{j}`` float64 CPU tensors; with ``voxel_`` (a float,
        kept apart so it can live in a JSON record) all :meth:`from_state` needs."""
        state = {}
        for j, (centred, offset) in enumerate(zip(self.centred_, self.offsets_, strict=True)):
            state[f"centred.{j}"] = torch.from_numpy(centred)
            state[f"offset.{j}"] = torch.from_numpy(offset)
        return state

    @classmethod
    def from_state(cls, state: Mapping[str, Tensor], voxel: float | None, device: str | torch.device = "cpu",
                   **params: float | int) -> TemplateAligner:
        """An aligner rebuilt from :meth:`state_dict` tensors (other keys are ignored) and
        its ``voxel_``; ``params`` are constructor arguments (see :meth:`params`)."""
        count = sum(1 for key in state if key.startswith("centred."))
        if count == 0 or voxel is None:
            raise CheckpointError("the aligner's templates or voxel size are missing")
        try:
            centred = [state[f"centred.{j}"].double().numpy() for j in range(count)]
            offsets = [state[f"offset.{j}"].double().numpy() for j in range(count)]
        except KeyError as error:
            raise CheckpointError(f"the aligner's state lacks {error}") from error
        return cls(device=device, **params).set_templates(centred, offsets, voxel)

    # ------------------------------------------------------------------ posing
    def to_template_frame(self, points: np.ndarray) -> tuple[int, np.ndarray]:
        """Index of the best-matching template and the scan moved into its frame."""
        j, rotation, shift = self.pose(points)
        return j, points @ rotation.T + shift

    def pose(self, points: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
        """Best-matching template ``j`` and the rigid motion (R, t) taking ``points`` into
        its frame: ``points @ R.T + t``."""
        return self.pose_many([points])[0]

    def pose_many(self, clouds: Sequence[np.ndarray]) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """:meth:`pose` of several scans, searched together: one ICP batch holds every
        scan's candidate poses on a template, so a GPU runs a few large kernels instead of
        many small ones per scan. Each scan's result does not depend on the others."""
        return self.pose_joined(*join_clouds(clouds, self.device))

    def pose_joined(self, points: Tensor, sizes: Sequence[int]) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """:meth:`pose_many` of clouds held end to end in one tensor (:mod:`mvr3d.geometry.joined`)."""
        self._check_fitted()
        if not sizes:
            return []
        if min(sizes) < 1:
            raise InputError("the aligner cannot pose an empty cloud")
        points = points.to(self.device, torch.float64)
        means = cloud_means(points, sizes)
        found = self._align_joined(points - means.repeat_interleave(torch.as_tensor(sizes, device=self.device), dim=0),
                                   sizes)
        means_host = means.cpu().numpy()
        return [(j, rot, trans + self.offsets_[j] - mean @ rot.T) for (j, rot, trans), mean in zip(found, means_host, strict=True)]

    def refine_from(self, points: Tensor, sizes: Sequence[int],
                    starts: Sequence[Sequence[tuple[int, np.ndarray, np.ndarray]]]) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """The fine stage of :meth:`pose_joined` from given start poses instead of a search:
        ``starts[i]`` holds cloud i's candidates (template j, R, t), each taking the cloud into
        template j's frame as :meth:`pose` does; every candidate runs fine ICP on its template
        and each cloud keeps its best, (j, R, t)."""
        self._check_fitted()
        points = points.to(self.device, torch.float64)
        means = cloud_means(points, sizes)
        centred = points - means.repeat_interleave(torch.as_tensor(sizes, device=self.device), dim=0)
        fine, valid = self._subsamples(centred, sizes)[1]
        count = max(len(candidates) for candidates in starts)
        # Clouds with fewer candidates repeat their first: a tie keeps the first anyway.
        padded = [[*candidates, *[candidates[0]] * (count - len(candidates))] for candidates in starts]
        mean = means.cpu().numpy()
        flat = [(j, rot, mean[cloud] @ rot.T + trans - self.offsets_[j])
                for cloud, candidates in enumerate(padded) for j, rot, trans in candidates]
        templates = torch.as_tensor([j for j, _, _ in flat], device=self.device)
        scans = torch.arange(len(starts), device=self.device).repeat_interleave(count)
        rot, trans, residual = icp_batch(fine[scans], self.joined_, self._tensor(np.stack([r for _, r, _ in flat])),
                                         self._tensor(np.stack([t for _, _, t in flat])), self.fine_iterations,
                                         self.trim, self.joined_normals_, cap=SELECTION_CAP * self.voxel_,
                                         valid=valid[scans], groups=templates)
        best = residual.view(len(starts), count).argmin(dim=1) + torch.arange(len(starts), device=self.device) * count
        rot, trans = rot[best].cpu().numpy(), trans[best].cpu().numpy()
        chosen = templates[best].tolist()
        return [(j, r, t + self.offsets_[j] - m @ r.T) for j, r, t, m in zip(chosen, rot, trans, mean, strict=True)]

    def align(self, centred: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
        """Best (template index, R, t) for a centred cloud, into that template's centred frame."""
        return self.align_many([centred])[0]

    def align_many(self, clouds: Sequence[np.ndarray]) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """:meth:`align` of several centred clouds at once."""
        self._check_fitted()
        if not clouds:
            return []
        if min(len(cloud) for cloud in clouds) < 1:
            raise InputError("the aligner cannot align an empty cloud")
        return self._align_joined(*join_clouds(clouds, self.device))

    def _align_joined(self, centred: Tensor, sizes: Sequence[int]) -> list[tuple[int, np.ndarray, np.ndarray]]:
        coarse, fine = self._subsamples(centred, sizes)
        ranked, poses = self._coarse_search(coarse, self._tensor(candidate_rotations(self.n_random, self.seed)))
        best = self._refine(fine, ranked, poses)
        return [(pose.template, pose.rotation.cpu().numpy(), pose.translation.cpu().numpy()) for pose in best]

    def _refine(self, fine: tuple[Tensor, Tensor], ranked: Tensor, poses: list[tuple[Tensor, Tensor]]) -> list[Pose]:
        """Per scan, the best of its ``keep_best`` best coarse poses after fine ICP: one
        batch holds every scan's candidates on every template (a grouped index answers
        each candidate from its own template); ties go to the better coarse rank.
        ``ranked`` (B, keep) holds (template, candidate) codes, best first."""
        points, valid = fine
        survivors = poses[0][0].shape[1]
        templates, columns = (ranked // survivors).flatten(), (ranked % survivors).flatten()
        scans = torch.arange(len(ranked), device=self.device).repeat_interleave(ranked.shape[1])
        start_rot = torch.stack([rot for rot, _ in poses])[templates, scans, columns]
        start_trans = torch.stack([trans for _, trans in poses])[templates, scans, columns]
        rot, trans, residual = icp_batch(points[scans], self.joined_, start_rot, start_trans, self.fine_iterations,
                                         self.trim, self.joined_normals_, cap=SELECTION_CAP * self.voxel_,
                                         valid=valid[scans], groups=templates)
        residual = residual.view(ranked.shape)
        pick = residual.argmin(dim=1)  # the first of equal residuals: the better coarse rank
        best = torch.arange(len(ranked), device=self.device) * ranked.shape[1] + pick
        chosen = templates[best].tolist()
        return [Pose(float(residual[b, k]), int(k), chosen[b], rot[best[b]], trans[best[b]])
                for b, k in enumerate(pick.tolist())]

    def _coarse_search(self, coarse: tuple[Tensor, Tensor], base: Tensor) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """Every rotation in ``base`` from every start position on every coarse template,
        for every scan: the ``keep_best`` best (template, candidate) codes per scan (B, keep),
        best first, and each template's refined poses, (B, S, 3, 3) and (B, S, 3).

        With ``survivors`` set, all candidates run ``screen_iterations`` first and only the
        ``survivors`` best per scan and template run the rest: a wrong start is usually
        plain after a few iterations, and a dense set of starts then costs little more
        than a sparse one.
        """
        points, valid = coarse
        scans = len(points)
        cap = SELECTION_CAP * self.voxel_
        residuals, poses = [], []
        for j, target in enumerate(self.coarse_templates_):
            shifts = self.shifts_[j]
            rot = base.repeat(len(shifts), 1, 1).repeat(scans, 1, 1)
            trans = shifts.repeat_interleave(len(base), dim=0).repeat(scans, 1)
            iterations = self.coarse_iterations
            if 0 < self.survivors < len(base) * len(shifts) and self.screen_iterations < iterations:
                rot, trans, res = icp_batch(points, target, rot, trans, self.screen_iterations, self.trim,
                                            self.coarse_normals_[j], cap=cap, valid=valid)
                keep = torch.topk(res.view(scans, -1), self.survivors, dim=1, largest=False, sorted=False).indices
                keep = keep.sort(dim=1).values + torch.arange(scans, device=self.device)[:, None] * (len(rot) // scans)
                rot, trans, iterations = rot[keep.flatten()], trans[keep.flatten()], iterations - self.screen_iterations
            rot, trans, res = icp_batch(points, target, rot, trans, iterations, self.trim, self.coarse_normals_[j],
                                        cap=cap, valid=valid)
            residuals.append(res.view(scans, -1))
            poses.append((rot.view(scans, -1, 3, 3), trans.view(scans, -1, 3)))
        # Codes j * S + c in template-major order; a stable sort keeps that order among ties.
        flat = torch.cat(residuals, dim=1)
        keep = min(self.keep_best, flat.shape[1])
        return flat.sort(dim=1, stable=True).indices[:, :keep], poses

    def _subsamples(self, centred: Tensor, sizes: Sequence[int]) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
        """Coarse and fine seeded random subsets of each cloud, after a coarse voxel grid has
        evened out scanner density; padded for :func:`icp_batch` (see :func:`mvr3d.geometry.icp.pad_stack`)."""
        sampled, counts = voxel_downsample_joined(centred, sizes, COARSE_VOXELS * self.voxel_)
        starts = np.cumsum([0, *counts[:-1]])
        picks = [self._picks(count) for count in counts]
        coarse = _padded_rows(sampled, [start + chosen for start, (chosen, _) in zip(starts, picks, strict=True)])
        fine = _padded_rows(sampled, [start + chosen for start, (_, chosen) in zip(starts, picks, strict=True)])
        return coarse, fine

    def _picks(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the coarse and the fine subset among ``count`` voxel centroids; each
        scan draws from its own generator seeded alike, so it does not depend on the batch."""
        rng = np.random.default_rng(self.seed)
        return tuple(np.arange(count) if count <= size else np.sort(rng.choice(count, size, replace=False))
                     for size in (self.coarse_points, self.fine_points))

    # ---------------------------------------------------------------- matching
    def template_distance(self, index: int, centred: np.ndarray) -> Tensor:
        """Distance (float32, on ``device``) from each point, given in template ``index``'s
        centred frame, to that template's nearest point."""
        distances, _ = self.templates_[index].query(self._tensor(centred))
        return distances[:, 0].float()

    def match(self, index: int, points: Tensor) -> tuple[Tensor, Tensor]:
        """Distance (float32) to and index of each point's nearest point of template
        ``index``, for points in that template's (uncentred) frame; on ``device``."""
        offset = torch.as_tensor(self.offsets_[index], dtype=torch.float64, device=self.device)
        distances, nearest = self.templates_[index].query(points.to(self.device).double() - offset)
        return distances[:, 0].float(), nearest[:, 0]

    def _field(self, coarse: np.ndarray) -> ClosestPointField:
        margin = FIELD_MARGIN * bounding_diagonal(coarse)
        return ClosestPointField(self._tensor(coarse), FIELD_CELL_VOXELS * self.voxel_, margin)

    def _tensor(self, array: np.ndarray) -> Tensor:
        return to_tensor(array, self.device)

    def _check_fitted(self) -> None:
        if self.voxel_ is None:
            raise InputError("TemplateAligner used before fit")


def _padded_rows(points: Tensor, rows: Sequence[np.ndarray]) -> tuple[Tensor, Tensor]:
    """(G, M, 3) ``points[rows[g]]`` padded to the longest row with each row's first point,
    and the (G, M) mask of real points, as :func:`mvr3d.geometry.icp.pad_stack` makes from separate clouds."""
    width = max(len(row) for row in rows)
    index = np.empty((len(rows), width), dtype=np.int64)
    valid = np.zeros((len(rows), width), dtype=bool)
    for g, row in enumerate(rows):
        index[g, : len(row)], index[g, len(row) :] = row, row[0]
        valid[g, : len(row)] = True
    return points[torch.as_tensor(index, device=points.device)], torch.as_tensor(valid, device=points.device)
