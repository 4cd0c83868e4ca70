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
    clouds), ``coarse_templates_`` (ClosestPointField of coarser ones, for the pose
    search), ``normals_`` /
    ``coarse_normals_`` and ``shifts_`` (start positions). Persist with
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
        self.templates_ = [NeighbourIndex(self._tensor(c)) for c in self.centred_]
        coarse = [voxel_downsample(c, COARSE_VOXELS * self.voxel_)[0] for c in self.centred_]
        self.coarse_templates_ = [self._field(c) for c in coarse]
        self.normals_ = [self._tensor(estimate_normals(c)) for c in self.centred_]
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
        self._check_fitted()
        mean = points.mean(axis=0)
        j, rot, trans = self.align(points - mean)
        return j, rot, trans + self.offsets_[j] - mean @ rot.T

    def align(self, centred: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
        """Best (template index, R, t) for a centred cloud, into that template's centred frame."""
        self._check_fitted()
        rng = np.random.default_rng(self.seed)
        coarse, fine = self._subsamples(centred, rng)
        best = self._refine(fine, *self._coarse_search(coarse, self._tensor(candidate_rotations(self.n_random, self.seed))))
        return best.template, best.rotation.cpu().numpy(), best.translation.cpu().numpy()

    def _refine(self, fine: Tensor, found: list[tuple[float, int, int]], poses: list[tuple[Tensor, Tensor]]) -> Pose:
        """The best of the ``keep_best`` best coarse poses after fine ICP: one batch per
        template holds all of its kept candidates; ties go to the better coarse rank."""
        kept = found[: self.keep_best]
        best = None
        for j in sorted({j for _, j, _ in kept}):
            ranks = [rank for rank, (_, t, _) in enumerate(kept) if t == j]
            columns = torch.tensor([kept[rank][2] for rank in ranks], device=self.device)
            r, t, res = icp_batch(fine, self.templates_[j], poses[j][0][columns], poses[j][1][columns],
                                  self.fine_iterations, self.trim, self.normals_[j], cap=SELECTION_CAP * self.voxel_)
            for row, (rank, residual) in enumerate(zip(ranks, res.tolist(), strict=True)):
                if best is None or (residual, rank) < (best.residual, best.rank):
                    best = Pose(residual, rank, j, r[row], t[row])
        assert best is not None
        return best

    def _coarse_search(self, coarse: Tensor, base: Tensor) -> tuple[list[tuple[float, int, int]], list[tuple[Tensor, Tensor]]]:
        """Every rotation in ``base`` from every start position on every coarse template:
        (residual, template, candidate) sorted best first, and each template's refined poses.

        With ``survivors`` set, all candidates run ``screen_iterations`` first and only the
        ``survivors`` best per template run the rest: a wrong start is usually plain after
        a few iterations, and a dense set of starts then costs little more than a sparse one.
        """
        found, poses = [], []
        cap = SELECTION_CAP * self.voxel_
        for j, target in enumerate(self.coarse_templates_):
            shifts = self.shifts_[j]
            rot = base.repeat(len(shifts), 1, 1)
            trans = shifts.repeat_interleave(len(base), dim=0)
            iterations = self.coarse_iterations
            if 0 < self.survivors < len(rot) and self.screen_iterations < iterations:
                rot, trans, res = icp_batch(coarse, target, rot, trans, self.screen_iterations, self.trim,
                                            self.coarse_normals_[j], cap=cap)
                keep = torch.topk(res, self.survivors, largest=False, sorted=False).indices.sort().values
                rot, trans, iterations = rot[keep], trans[keep], iterations - self.screen_iterations
            rot, trans, res = icp_batch(coarse, target, rot, trans, iterations, self.trim, self.coarse_normals_[j], cap=cap)
            found += [(residual, j, c) for c, residual in enumerate(res.tolist())]
            poses.append((rot, trans))
        found.sort(key=lambda item: item[0])
        return found, poses

    def _subsamples(self, points: np.ndarray, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        """Coarse and fine random subsets of the scan, after a coarse voxel grid has evened
        out scanner density."""
        sampled = voxel_downsample(points, COARSE_VOXELS * self.voxel_)[0]
        subsets = []
        for count in (self.coarse_points, self.fine_points):
            pick = sampled if len(sampled) <= count else sampled[np.sort(rng.choice(len(sampled), count, replace=False))]
            subsets.append(self._tensor(pick))
        return subsets[0], subsets[1]

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
