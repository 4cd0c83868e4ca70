"""View poses: rotations applied to the centred cloud before it is seen from +z.

A pose R shows the object as seen from the direction ``R.T @ (0, 0, 1)`` in the object's
own frame. Euler angles follow Open3D's ``get_rotation_matrix_from_xyz`` (R = Rx Ry Rz),
which CPMF used to define the 27 poses MVR adopts.
"""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import torch
from torch import Tensor

from mvr3d.errors import InputError

PAPER_ANGLES_DEG = (0.0, -15.0, 15.0)


def euler_to_matrix(angles_deg: Tensor | np.ndarray) -> Tensor:
    """(K, 3) x/y/z angles in degrees -> (K, 3, 3) float32 rotations R = Rx @ Ry @ Rz."""
    angles = torch.as_tensor(angles_deg, dtype=torch.float64)
    if angles.ndim != 2 or angles.shape[1] != 3:
        raise InputError(f"Euler angles must have shape (K, 3), got {tuple(angles.shape)}")
    cos, sin = torch.cos(torch.deg2rad(angles)), torch.sin(torch.deg2rad(angles))
    one, zero = torch.ones_like(cos[:, 0]), torch.zeros_like(cos[:, 0])

    def axis(c: Tensor, s: Tensor, rows: tuple) -> Tensor:
        table = {"c": c, "s": s, "-s": -s, "1": one, "0": zero}
        return torch.stack([torch.stack([table[e] for e in row], -1) for row in rows], -2)

    rx = axis(cos[:, 0], sin[:, 0], (("1", "0", "0"), ("0", "c", "-s"), ("0", "s", "c")))
    ry = axis(cos[:, 1], sin[:, 1], (("c", "0", "s"), ("0", "1", "0"), ("-s", "0", "c")))
    rz = axis(cos[:, 2], sin[:, 2], (("c", "-s", "0"), ("s", "c", "0"), ("0", "0", "1")))
    return (rx @ ry @ rz).float()


def paper_poses() -> Tensor:
    """CPMF/MVR's 27 poses: every x/y/z Euler combination of {0, -15, +15} degrees.

    Enumeration order (z fastest), so the identity comes first.
    """
    angles = torch.tensor(list(itertools.product(PAPER_ANGLES_DEG, repeat=3)))
    return euler_to_matrix(angles)


def paper_pose_order() -> Tensor:
    """Indices of :func:`paper_poses` from least to most rotated.

    Ties are broken by how far the view direction moves (an in-plane z rotation shows the
    same surface, so it comes after x/y tilts), then by enumeration order. The first 3
    are identity and the y = -/+15 degree tilts; the ablation's 1/3/9/15/21 views are
    prefixes of this order.
    """
    poses = paper_poses().double()
    angle = torch.rad2deg(
        torch.arccos(((poses.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1))
    )
    tilt = torch.rad2deg(torch.arccos(poses[:, 2, 2].clamp(-1, 1)))
    keys = [
        (round(float(a), 4), -round(float(t), 4), i)
        for i, (a, t) in enumerate(zip(angle, tilt, strict=True))
    ]
    return torch.tensor([key[2] for key in sorted(keys)])


def look_from(directions: Tensor) -> Tensor:
    """(K, 3) unit view directions -> (K, 3, 3) rotations taking each direction to +z."""
    d = torch.nn.functional.normalize(directions.double(), dim=1)
    # The up hint must not be parallel to the view direction.
    up = torch.zeros_like(d)
    near_y = d[:, 1].abs() > 0.99
    up[:, 1] = (~near_y).double()
    up[:, 2] = near_y.double()
    x_axis = torch.nn.functional.normalize(torch.cross(up, d, dim=1), dim=1)
    y_axis = torch.cross(d, x_axis, dim=1)
    return torch.stack([x_axis, y_axis, d], dim=1).float()


def fibonacci_directions(n: int) -> Tensor:
    """(n, 3) float64 near-uniform unit vectors from +z to -z along a Fibonacci spiral."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"the number of directions must be a positive integer, got {n!r}")
    if n == 1:
        return torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    i = torch.arange(n, dtype=torch.float64)
    z = 1.0 - 2.0 * i / (n - 1)
    ring = torch.sqrt((1.0 - z * z).clamp_min(0.0))
    phi = i * math.pi * (3.0 - math.sqrt(5.0))
    return torch.stack([ring * torch.cos(phi), ring * torch.sin(phi), z], dim=1)


def fibonacci_poses(n: int) -> Tensor:
    """(n, 3, 3) rotations seeing the object from n near-uniform directions (full sphere).

    Directions run from +z (identity first) to -z along a Fibonacci spiral.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"the number of views must be a positive integer, got {n!r}")
    if n == 1:
        return torch.eye(3).unsqueeze(0)
    return look_from(fibonacci_directions(n))


def ring_directions(rings: list[tuple[int, float]]) -> Tensor:
    """(1 + sum n, 3) float64 unit vectors: +z, then for each ring (n, tilt) n directions
    ``tilt`` degrees off +z, evenly spaced in azimuth."""
    directions = [[0.0, 0.0, 1.0]]
    for count, tilt in rings:
        if count < 1 or not 0 < tilt < 180:
            raise InputError(f"a ring of views needs a positive count and a tilt in (0, 180) degrees, got {count}x{tilt:g}")
        polar = math.radians(tilt)
        for k in range(count):
            azimuth = 2 * math.pi * k / count
            directions.append([math.sin(polar) * math.cos(azimuth), math.sin(polar) * math.sin(azimuth), math.cos(polar)])
    return torch.tensor(directions, dtype=torch.float64)


def ring_poses(rings: list[tuple[int, float]]) -> Tensor:
    """Views of the side facing +z: one straight on and rings of views tilted away from it
    (``"ring6x45"``: 6 views 45 degrees off). Scan-facing views (``view_selection="scan"``)
    turn a partial scan's scanned side to +z, and these views see its whole scanned side,
    where the paper's 3 least-rotated poses (15 degrees apart) miss what the scanner saw
    at a slant."""
    return look_from(ring_directions(rings))


def check_rotations(rotations: Tensor | np.ndarray, atol: float = 1e-4) -> Tensor:
    """Validate (V, 3, 3) proper rotations; return them as float32."""
    r = torch.as_tensor(rotations)
    if r.ndim == 2 and r.shape == (3, 3):
        r = r.unsqueeze(0)
    if r.ndim != 3 or r.shape[1:] != (3, 3) or r.shape[0] < 1:
        raise InputError(f"rotations must have shape (V, 3, 3), got {tuple(r.shape)}")
    if not (r.is_floating_point() and torch.isfinite(r).all()):
        raise InputError("rotations must be finite floating-point matrices")
    r64 = r.double()
    error = (r64 @ r64.transpose(1, 2) - torch.eye(3, dtype=torch.float64, device=r.device)).abs()
    bad = (error.amax(dim=(1, 2)) > atol) | ((torch.linalg.det(r64) - 1.0).abs() > atol)
    if bad.any():
        index = int(bad.nonzero()[0])
        raise InputError(
            f"rotation {index} is not a proper rotation (need R @ R.T = I and det(R) = +1)"
        )
    return r.float()


def make_poses(spec: str | int | Tensor | np.ndarray) -> Tensor:
    """Rotations from a spec.

    - ``"paper27"`` (or ``"paper"``): the 27 CPMF/MVR poses in enumeration order;
    - an int n <= 27 (or ``"paperN"``): the n least-rotated paper poses
      (:func:`paper_pose_order`), so the paper's view-count ablation uses its own poses;
    - an int n > 27 or ``"fibonacciN"``: n directions over the whole sphere;
    - ``"ringNxT"`` (rings joined by ``+``, e.g. ``"ring4x30+4x60"``): :func:`ring_poses`;
    - a (V, 3, 3) tensor/array: validated user rotations.
    """
    if isinstance(spec, (Tensor, np.ndarray)):
        return check_rotations(spec)
    if isinstance(spec, str):
        return _poses_from_string(spec)
    if isinstance(spec, bool) or not isinstance(spec, int) or spec < 1:
        raise InputError(f"views must be a positive integer, a name or rotations, got {spec!r}")
    if spec <= 27:
        return paper_poses()[paper_pose_order()[:spec]]
    _check_count(spec)
    return fibonacci_poses(spec)


# Every view is rendered, scored and kept in memory (and `render` writes one PNG each); the
# paper uses 27, and past a few hundred, neighbouring views see the same.
MAX_VIEWS = 1000


def _check_count(count: int) -> None:
    if count > MAX_VIEWS:
        raise InputError(
            f"{count:,} views requested; at most {MAX_VIEWS:,} are supported (each view is rendered and kept "
            "in memory; 27 cover the object)"
        )


def views_spec(text: str | int) -> int | str:
    """A ``--views`` value as the config holds it: a count as an int, a name as given
    (``make_poses`` checks both)."""
    return int(text) if str(text).strip().isdigit() else str(text)


def _poses_from_string(spec: str) -> Tensor:
    text = spec.strip().lower().replace(":", "").replace("-", "")
    if text.isdigit():
        return make_poses(int(text))
    if text == "paper":
        return paper_poses()
    if text.startswith("ring"):
        return ring_poses(_rings(spec, text.removeprefix("ring")))
    for prefix in ("paper", "fibonacci"):
        count = text.removeprefix(prefix)
        if count != text and count.isdigit() and int(count) >= 1:
            if prefix == "fibonacci":
                _check_count(int(count))
                return fibonacci_poses(int(count))
            if int(count) == 27:
                return paper_poses()
            if int(count) < 27:
                return make_poses(int(count))
    raise InputError(
        f"unknown views {spec!r}: use an integer, 'paper27', 'paperN' (N <= 27), 'fibonacciN' or 'ringNxT'"
    )


def _rings(spec: str, text: str) -> list[tuple[int, float]]:
    """``"6x45+4x70"`` -> [(6, 45.0), (4, 70.0)]."""
    rings = []
    for part in text.split("+"):
        match = re.fullmatch(r"(\d+)x(\d+(?:\.\d+)?)", part)
        if match is None:
            raise InputError(f"unknown views {spec!r}: a ring spec is 'ring' then COUNTxTILT_DEGREES rings "
                             "joined by '+', e.g. 'ring6x45' or 'ring4x30+4x60'")
        rings.append((int(match.group(1)), float(match.group(2))))
    _check_count(1 + sum(count for count, _ in rings))
    return rings


def cone_direction(cone_deg: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector uniform on the spherical cap within ``cone_deg`` of +z."""
    z = rng.uniform(np.cos(np.deg2rad(min(cone_deg, 180.0))), 1.0)
    phi = rng.uniform(0.0, 2 * np.pi)
    r = np.sqrt(max(0.0, 1.0 - z * z))
    return np.array([r * np.cos(phi), r * np.sin(phi), z])
