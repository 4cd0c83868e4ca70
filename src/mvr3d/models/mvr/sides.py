"""Which side of its template a partial scan was taken from, and views that face it.

A one-sided scan drawn from a fixed camera shows its unseen back to half the directions it
can come from; the network then reconstructs a view it never saw in training and the
error follows the scan's side, not its defects. So every registered scan is first turned
so that the side it was scanned from faces the scoring views.

The side is found with the template alone: each template point is marked with the
directions (a near-uniform set of candidates) from which a z-buffer sees it; a scan's
points, matched to their nearest template points, are mostly visible from the direction
the scan came from and hardly at all from the opposite one (which a thin shell's own
visibility could not tell apart).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from mvr3d.render import RenderConfig, render_views
from mvr3d.render.poses import fibonacci_directions, look_from


class SideFinder:
    """Per template, the candidate directions each of its points is visible from."""

    def __init__(self, templates: list[Tensor], config: RenderConfig, radius: float, candidates: int) -> None:
        self.directions = fibonacci_directions(candidates).to(templates[0].device)
        rotations = look_from(self.directions)
        self.visible_ = []
        for points in templates:
            centre = (points.amin(dim=0).double() + points.amax(dim=0)) / 2
            views = render_views(points, rotations, config, centre=centre, radius=radius)
            self.visible_.append(views.visible.to(torch.float16))  # (K, Nt)

    def direction(self, template: int, nearest: Tensor) -> Tensor:
        """The candidate direction (3,) from which most of the matched points are visible."""
        support = self.visible_[template][:, nearest.to(self.visible_[template].device)].float().mean(dim=1)
        return self.directions[support.argmax()]


def facing_rotation(direction: Tensor) -> Tensor:
    """(3, 3) float64 rotation turning ``direction`` to +z, the axis the views look along."""
    return look_from(direction.reshape(1, 3))[0].double()


def turn_to_views(points: Tensor, centre: Tensor | np.ndarray, rotation: Tensor) -> Tensor:
    """``points`` rotated about ``centre`` (float64 maths, input dtype out)."""
    centre = torch.as_tensor(centre, dtype=torch.float64, device=points.device)
    rotation = rotation.to(points.device, torch.float64)
    return ((points.double() - centre) @ rotation.T + centre).to(points.dtype)


def sphere_direction(rng: np.random.Generator) -> np.ndarray:
    """A unit vector uniform on the sphere."""
    z = rng.uniform(-1.0, 1.0)
    phi = rng.uniform(0.0, 2 * math.pi)
    r = math.sqrt(max(0.0, 1.0 - z * z))
    return np.array([r * math.cos(phi), r * math.sin(phi), z])
