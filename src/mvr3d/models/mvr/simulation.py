"""Simulated scans of a template for training and calibration: rotated, cut to what one
scanner direction sees, with depth noise; and the held-out half of a template."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mvr3d.models.mvr.config import MVRConfig
from mvr3d.models.mvr.placement import bounding_frame
from mvr3d.models.mvr.sides import sphere_direction
from mvr3d.render.poses import cone_direction
from mvr3d.render.visibility import visible_from

MIN_SPLIT_POINTS = 500  # per half, for a template to be split into registered / held out


def held_out(count: int, template: int, seed: int) -> np.ndarray:
    """A seeded half of a template's points (all kept when it is too small to split)."""
    mask = np.zeros(count, dtype=bool)
    if count >= 2 * MIN_SPLIT_POINTS:
        mask[np.random.default_rng([seed, template, 0x5E]).permutation(count)[: count // 2]] = True
    return mask


@dataclass(frozen=True)
class Scanner:
    """A simulated scanner for templates of radius about ``radius``."""

    config: MVRConfig
    radius: float
    device: torch.device

    def scan(self, points: np.ndarray, centre: np.ndarray, rotation: torch.Tensor,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A template rotated about its centre, cut to one scanner direction, with depth
        noise; and the index of the template point each simulated point came from."""
        cfg = self.config
        moved = (points - centre) @ rotation.numpy().T.astype(points.dtype) + centre
        source, direction = np.arange(len(points)), None
        if cfg.simulate_partial:
            cone = cfg.scanner_cone_deg
            direction = sphere_direction(rng) if cone >= 180 else cone_direction(cone, rng)
            source = self.visible(moved, direction)
            moved = moved[source]
        if cfg.augment_noise > 0:
            moved = self.noise(moved, direction, rng)
        return moved, source

    def visible(self, points: np.ndarray, direction: np.ndarray) -> np.ndarray:
        """Indices of the points visible from ``direction`` (hidden-point removal by the renderer)."""
        return visible_from(points, direction, self.config.render, centre=bounding_frame(points)[0],
                            radius=self.radius, device=self.device)

    def noise(self, points: np.ndarray, direction: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
        """Gaussian depth noise along the line of sight (isotropic without one)."""
        sigma = self.config.augment_noise * 2 * self.radius * rng.uniform(0.5, 1.5)
        if direction is None:
            return points + rng.normal(scale=sigma, size=points.shape).astype(points.dtype)
        offsets = rng.normal(scale=sigma, size=len(points))
        return points + np.outer(offsets, direction).astype(points.dtype)
