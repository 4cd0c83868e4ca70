"""Reg3D-AD-like baseline: register the test scan to each template, score by residual.

At fit the templates are voxel-downsampled and centred. At score the centred test
scan is matched against every template from a set of candidate rotations (24 cube
rotations plus seeded random ones); all candidates run a few trimmed point-to-point
ICP iterations at once (batched Kabsch), the best few are refined on more points,
and the template + pose with the smallest trimmed mean residual wins. Trimming
matters because test scans are partial views of complete templates. A point's score
is the distance of the aligned point to the nearest template point; the object score
is the mean of the top 1 %.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from torch import Tensor
from tqdm.auto import tqdm

from mvr3d.baselines.btf import load_clouds
from mvr3d.baselines.fpfh import bounding_diagonal, estimate_normals, voxel_downsample
from mvr3d.errors import InputError
from mvr3d.scans import ScanScore, as_points, object_score
from mvr3d.utils.neighbours import NeighbourIndex

# Poses are ranked by the mean of min(distance, this many template voxels) over all points.
SELECTION_CAP = 10.0


def cube_rotations() -> np.ndarray:
    """The 24 proper rotations of a cube: signed permutation matrices with det +1."""
    mats = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            mat = np.zeros((3, 3))
            mat[range(3), perm] = signs
            if np.linalg.det(mat) > 0:
                mats.append(mat)
    return np.stack(mats)


def candidate_rotations(n_random: int, seed: int) -> np.ndarray:
    """Cube rotations plus ``n_random`` seeded uniformly random ones."""
    if n_random <= 0:
        return cube_rotations()
    extra = Rotation.random(n_random, random_state=seed).as_matrix()
    return np.concatenate([cube_rotations(), extra])


def start_shifts(centred: np.ndarray, count: int) -> np.ndarray:
    """Where a partial scan's centroid may sit in a centred template: the centre, and
    halfway to ``count`` well-spread template points (farthest-point sampling), since a
    one-sided scan's centroid lies between the part's centre and the side it shows."""
    shifts = [np.zeros(3)]
    if count > 0 and len(centred):
        chosen = [int(np.argmax(np.linalg.norm(centred, axis=1)))]
        gap = np.linalg.norm(centred - centred[chosen[0]], axis=1)
        for _ in range(min(count, len(centred)) - 1):
            chosen.append(int(np.argmax(gap)))
            gap = np.minimum(gap, np.linalg.norm(centred - centred[chosen[-1]], axis=1))
        shifts += list(0.5 * centred[chosen])
    return np.stack(shifts)


def kabsch(src: Tensor, dst: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
    """Batched weighted least-squares rigid fit: (C, M, 3) x2, (C, M) -> R (C, 3, 3), t (C, 3)."""
    w = weight / weight.sum(dim=1, keepdim=True).clamp_min(1e-12)
    src_c = torch.einsum("cm,cmi->ci", w, src)
    dst_c = torch.einsum("cm,cmi->ci", w, dst)
    cov = torch.einsum("cm,cmi,cmj->cij", w, src - src_c[:, None], dst - dst_c[:, None])
    u, _, vt = torch.linalg.svd(cov)
    v, ut = vt.transpose(1, 2), u.transpose(1, 2)
    # Reflection guard: force det(R) = +1.
    d = torch.sign(torch.linalg.det(v @ ut))
    fix = torch.ones(len(cov), 3, dtype=cov.dtype, device=cov.device)
    fix[:, 2] = torch.where(d == 0, 1.0, d)
    rot = v @ torch.diag_embed(fix) @ ut
    return rot, dst_c - torch.einsum("cij,cj->ci", rot, src_c)


def rotvec_to_matrix(rotvec: Tensor) -> Tensor:
    """Rodrigues' formula for (C, 3) rotation vectors -> (C, 3, 3)."""
    angle = rotvec.norm(dim=1)
    axis = rotvec / angle.clamp_min(1e-300)[:, None]
    k = torch.zeros(len(rotvec), 3, 3, dtype=rotvec.dtype, device=rotvec.device)
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k = k - k.transpose(1, 2)
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device)
    return eye + angle.sin()[:, None, None] * k + (1 - angle.cos())[:, None, None] * (k @ k)


def _trim_mask(dist: Tensor, trim: float) -> Tensor:
    """Per row, the ``trim`` fraction of smallest distances."""
    keep = max(1, int(round(dist.shape[1] * trim)))
    threshold = dist.kthvalue(keep, dim=1, keepdim=True).values
    return dist <= threshold


def plane_step(moved: Tensor, matched: Tensor, normals: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
    """Batched linearised point-to-plane update: R (C, 3, 3), t (C, 3) for moved points."""
    rows = torch.cat([torch.linalg.cross(moved, normals, dim=2), normals], dim=2)  # (C, M, 6)
    gap = ((matched - moved) * normals).sum(dim=2)
    eye = torch.eye(6, dtype=moved.dtype, device=moved.device)
    lhs = torch.einsum("cm,cmi,cmj->cij", weight, rows, rows) + 1e-9 * eye
    rhs = torch.einsum("cm,cmi,cm->ci", weight, rows, gap)
    # solve_ex: no error check, which on a GPU would be a host sync per ICP iteration.
    step = torch.linalg.solve_ex(lhs, rhs)[0]
    return rotvec_to_matrix(step[:, :3]), step[:, 3:]


def icp_batch(
    source: Tensor,
    target: NeighbourIndex,
    rotations: Tensor,
    translations: Tensor,
    iterations: int,
    trim: float = 0.8,
    normals: Tensor | None = None,
    cap: float | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Trimmed ICP of one (M, 3) source from C initial poses at once (float64, any device).

    Point-to-point (Kabsch) by default; point-to-plane when the target's ``normals``
    are given, which converges in far fewer iterations (point-to-point crawls along
    the surface: 140 iterations still left 1.5 degrees on a partial blob).
    Returns refined R (C, 3, 3), t (C, 3) and the trimmed mean residual (C,), or with
    ``cap`` the mean over all points of min(distance, cap): a partial scan slid onto the
    wrong part of a template fits 80 % of its points well and leaves the rest far off,
    which a trimmed mean cannot see.
    """
    rot, trans = rotations.clone(), translations.clone()
    for step in range(iterations + 1):
        moved = torch.einsum("cij,mj->cmi", rot, source) + trans[:, None]
        dist, index = target.query(moved.reshape(-1, 3))
        dist, index = dist.view(len(rot), -1).to(moved.device), index.view(-1).to(moved.device)
        mask = _trim_mask(dist, trim)
        if cap is None:
            residual = (dist * mask).sum(dim=1) / mask.sum(dim=1)
        else:
            residual = dist.clamp_max(cap).mean(dim=1)
        if step == iterations:
            break
        matched = target.reference[index].view(moved.shape)
        weight = mask.to(moved.dtype)
        if normals is None:
            step_rot, step_trans = kabsch(moved, matched, weight)
        else:
            step_rot, step_trans = plane_step(moved, matched, normals[index].view(moved.shape), weight)
        rot = step_rot @ rot
        trans = torch.einsum("cij,cj->ci", step_rot, trans) + step_trans
    return rot, trans, residual


def icp(
    source: np.ndarray,
    target: np.ndarray,
    rotation: np.ndarray | None = None,
    translation: np.ndarray | None = None,
    iterations: int = 30,
    trim: float = 0.9,
    point_to_plane: bool = False,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray, float]:
    """Align ``source`` onto ``target``: returns R, t (target ~ source @ R.T + t), residual."""
    rot0 = np.eye(3) if rotation is None else np.asarray(rotation, np.float64)
    trans0 = np.zeros(3) if translation is None else np.asarray(translation, np.float64)
    target = np.asarray(target, np.float64)
    normals = _tensor(estimate_normals(target), device) if point_to_plane else None
    rot, trans, res = icp_batch(
        _tensor(source, device),
        NeighbourIndex(_tensor(target, device)),
        _tensor(rot0[None], device),
        _tensor(trans0[None], device),
        iterations,
        trim,
        normals,
    )
    return rot[0].cpu().numpy(), trans[0].cpu().numpy(), float(res[0])


def _tensor(array: np.ndarray, device: str | torch.device) -> Tensor:
    return torch.as_tensor(np.asarray(array, dtype=np.float64), device=device)


class RegistrationDetector:
    """Template registration (Reg3D-AD-like) with residual-distance anomaly scores."""

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
        self.top_fraction = top_fraction
        self.seed = seed
        self.shift_candidates = shift_candidates
        self.device = torch.device(device)
        self.shifts_: list[Tensor] = []
        self.voxel_: float | None = None
        self.templates_: list[NeighbourIndex] = []
        self.coarse_templates_: list[NeighbourIndex] = []
        self.normals_: list[Tensor] = []
        self.coarse_normals_: list[Tensor] = []
        self.offsets_: list[np.ndarray] = []
        self.centred_: list[np.ndarray] = []

    def fit(self, scans: Iterable[object], progress: bool = False) -> RegistrationDetector:
        clouds = load_clouds(scans)
        voxel = self.voxel_size_ratio * float(np.median([bounding_diagonal(c) for c in clouds]))
        sampled = [voxel_downsample(c, voxel)[0] for c in tqdm(clouds, desc="templates", disable=not progress)]
        offsets = [s.mean(axis=0) for s in sampled]
        return self.set_templates([s - o for s, o in zip(sampled, offsets, strict=True)], offsets, voxel)

    def set_templates(
        self, centred: list[np.ndarray], offsets: list[np.ndarray], voxel: float
    ) -> RegistrationDetector:
        """Index templates already downsampled and centred (``template = centred + offset``);
        everything else is derived from them, so a saved detector rebuilds identically."""
        self.voxel_ = float(voxel)
        self.offsets_ = [np.asarray(o, dtype=np.float64) for o in offsets]
        self.centred_ = [np.asarray(c, dtype=np.float64) for c in centred]
        self.templates_ = [NeighbourIndex(self._tensor(c)) for c in self.centred_]
        # The pose search queries far-off points many times: a small cloud keeps it fast.
        coarse = [voxel_downsample(c, 4 * self.voxel_)[0] for c in self.centred_]
        self.coarse_templates_ = [NeighbourIndex(self._tensor(c)) for c in coarse]
        self.normals_ = [self._tensor(estimate_normals(c)) for c in self.centred_]
        self.coarse_normals_ = [self._tensor(estimate_normals(c)) for c in coarse]
        self.shifts_ = [self._tensor(start_shifts(c, self.shift_candidates)) for c in coarse]
        return self

    def _tensor(self, array: np.ndarray) -> Tensor:
        return _tensor(array, self.device)

    def to_template_frame(self, points: np.ndarray) -> tuple[int, np.ndarray]:
        """Index of the best-matching template and the scan moved into its frame."""
        j, rotation, shift = self.pose(points)
        return j, points @ rotation.T + shift

    def pose(self, points: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
        """Best-matching template ``j`` and the rigid motion (R, t) taking ``points`` into
        its frame: ``points @ R.T + t``."""
        if self.voxel_ is None:
            raise InputError("RegistrationDetector used before fit")
        mean = points.mean(axis=0)
        j, rot, trans = self.align(points - mean)
        return j, rot, trans + self.offsets_[j] - mean @ rot.T

    def template_distance(self, index: int, centred: np.ndarray) -> Tensor:
        """Distance (float32, on this detector's device) from each point, given in template
        ``index``'s centred frame, to that template's nearest point."""
        distances, _ = self.templates_[index].query(self._tensor(centred))
        return distances[:, 0].float()

    def _subsamples(self, points: np.ndarray, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        """Coarse and fine random subsets of the scan, after a coarse voxel grid has evened
        out scanner density."""
        sampled = voxel_downsample(points, 4 * self.voxel_)[0]
        subsets = []
        for count in (self.coarse_points, self.fine_points):
            pick = sampled if len(sampled) <= count else sampled[np.sort(rng.choice(len(sampled), count, replace=False))]
            subsets.append(self._tensor(pick))
        return subsets[0], subsets[1]

    def align(self, centred: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
        """Best (template index, R, t) for a centred test cloud."""
        rng = np.random.default_rng(self.seed)
        coarse, fine = self._subsamples(centred, rng)
        base = self._tensor(candidate_rotations(self.n_random, self.seed))
        found, poses = [], []
        for j, target in enumerate(self.coarse_templates_):
            shifts = self.shifts_[j]
            rots = base.repeat(len(shifts), 1, 1)
            starts = shifts.repeat_interleave(len(base), dim=0)
            rot, trans, res = icp_batch(
                coarse, target, rots, starts, self.coarse_iterations, self.trim, self.coarse_normals_[j],
                cap=SELECTION_CAP * self.voxel_,
            )
            found += [(residual, j, c) for c, residual in enumerate(res.tolist())]
            poses.append((rot, trans))
        found.sort(key=lambda item: item[0])
        best = None
        for _, j, c in found[: self.keep_best]:
            rot, trans = poses[j][0][c : c + 1], poses[j][1][c : c + 1]
            r, t, res = icp_batch(fine, self.templates_[j], rot, trans, self.fine_iterations, self.trim,
                                  self.normals_[j], cap=SELECTION_CAP * self.voxel_)
            if best is None or float(res[0]) < best[0]:
                best = (float(res[0]), j, r[0], t[0])
        assert best is not None
        return best[1], best[2].cpu().numpy(), best[3].cpu().numpy()

    def score(self, scan: object) -> ScanScore:
        if self.voxel_ is None:
            raise InputError("RegistrationDetector.score called before fit")
        points = as_points(scan).astype(np.float64)
        centred = points - points.mean(axis=0)
        j, rot, trans = self.align(centred)
        point_scores = self.template_distance(j, centred @ rot.T + trans).cpu().numpy()
        return ScanScore(point_scores, object_score(point_scores, "top1", self.top_fraction), 1.0)
