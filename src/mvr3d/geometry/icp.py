"""Rigid registration: batched trimmed ICP (point-to-point or point-to-plane) and the
starting poses a global search tries (cube rotations, seeded random ones, centroid shifts).

Everything runs on float64 tensors on any device, over C candidate poses at once.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from torch import Tensor

from mvr3d.geometry.field import ClosestPointField
from mvr3d.geometry.neighbours import NeighbourIndex
from mvr3d.geometry.normals import estimate_normals
from mvr3d.geometry.rotations import rotvec_to_matrix


def to_tensor(array: np.ndarray, device: str | torch.device) -> Tensor:
    """Float64 tensor on ``device``: registration accumulates many small updates."""
    return torch.as_tensor(np.asarray(array, dtype=np.float64), device=device)


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


def _trim_mask(dist: Tensor, trim: float, valid: Tensor | None = None) -> Tensor:
    """Per row, the ``trim`` fraction of smallest distances (among the ``valid`` ones)."""
    if valid is None:
        keep = max(1, int(round(dist.shape[1] * trim)))
        threshold = dist.kthvalue(keep, dim=1, keepdim=True).values
        return dist <= threshold
    # Rows hold different numbers of real points, so each row has its own rank to cut at.
    keep = (valid.sum(dim=1, keepdim=True) * trim).round().long().clamp_min(1)
    padded = dist.masked_fill(~valid, torch.inf)
    threshold = padded.sort(dim=1).values.gather(1, keep - 1)
    return padded <= threshold


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
    target: NeighbourIndex | ClosestPointField,
    rotations: Tensor,
    translations: Tensor,
    iterations: int,
    trim: float = 0.8,
    normals: Tensor | None = None,
    cap: float | None = None,
    valid: Tensor | None = None,
    groups: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Trimmed ICP of one (M, 3) source from C initial poses at once (float64, any device).

    Several sources at once: ``source`` (G, M, 3) with C = G x K poses, the k-th pose of
    group g at row g * K + k; ``valid`` (G, M) marks each group's real points when sources
    of different sizes were padded to M (padding is ignored by the fit and the residual).

    Point-to-point (Kabsch) by default; point-to-plane when the target's ``normals``
    are given, which converges in far fewer iterations (point-to-point crawls along
    the surface: 140 iterations still left 1.5 degrees on a partial blob).
    With a grouped target (several templates in one :class:`NeighbourIndex`, ``sizes``),
    ``groups`` (C,) names the template each pose is fitted to, and ``normals`` cover them all.
    Returns refined R (C, 3, 3), t (C, 3) and the trimmed mean residual (C,), or with
    ``cap`` the mean over all points of min(distance, cap): a partial scan slid onto the
    wrong part of a template fits 80 % of its points well and leaves the rest far off,
    which a trimmed mean cannot see.
    """
    rot, trans = rotations.clone(), translations.clone()
    if valid is not None and bool(valid.all()):
        valid = None  # no padding: the cheaper unmasked path
    if valid is not None:
        valid = _per_pose(valid, len(rot))
        count = valid.sum(dim=1).to(source.dtype)
    query_groups = {} if groups is None else {"groups": groups.repeat_interleave(source.shape[-2])}
    for step in range(iterations + 1):
        moved = _move(rot, trans, source)
        dist, index = target.query(moved.reshape(-1, 3), **query_groups)
        dist, index = dist.view(len(rot), -1).to(moved.device), index.view(-1).to(moved.device)
        mask = _trim_mask(dist, trim, valid)
        if cap is None:
            residual = (dist * mask).sum(dim=1) / mask.sum(dim=1)
        elif valid is None:
            residual = dist.clamp_max(cap).mean(dim=1)
        else:
            residual = (dist.clamp_max(cap) * valid).sum(dim=1) / count
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


def _move(rot: Tensor, trans: Tensor, source: Tensor) -> Tensor:
    """(C, M, 3): one source under C poses, or G sources under K poses each (C = G x K)."""
    if source.dim() == 2:
        return torch.einsum("cij,mj->cmi", rot, source) + trans[:, None]
    groups = len(source)
    moved = torch.einsum("gkij,gmj->gkmi", rot.view(groups, -1, 3, 3), source)
    return moved.reshape(len(rot), source.shape[1], 3) + trans[:, None]


def _per_pose(valid: Tensor, poses: int) -> Tensor:
    """A (G, M) mask of each group's points as one row per pose (C = G x K, grouped)."""
    groups, width = valid.shape
    return valid[:, None].expand(groups, poses // groups, width).reshape(poses, width)


def pad_stack(clouds: list[np.ndarray], device: str | torch.device) -> tuple[Tensor, Tensor]:
    """(G, M, 3) float64 clouds padded to the longest with copies of their first point, and
    the (G, M) mask of real points (for :func:`icp_batch`'s ``valid``); one upload."""
    width = max(len(cloud) for cloud in clouds)
    stacked = np.empty((len(clouds), width, 3))
    valid = np.zeros((len(clouds), width), dtype=bool)
    for row, cloud in enumerate(clouds):
        stacked[row, : len(cloud)] = cloud
        stacked[row, len(cloud) :] = cloud[:1]
        valid[row, : len(cloud)] = True
    return to_tensor(stacked, device), torch.as_tensor(valid, device=device)


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
    normals = to_tensor(estimate_normals(target), device) if point_to_plane else None
    rot, trans, res = icp_batch(
        to_tensor(source, device),
        NeighbourIndex(to_tensor(target, device)),
        to_tensor(rot0[None], device),
        to_tensor(trans0[None], device),
        iterations,
        trim,
        normals,
    )
    return rot[0].cpu().numpy(), trans[0].cpu().numpy(), float(res[0])
