"""Axis-angle rotations: batched on any torch device, and seeded random small turns.

scipy's ``Rotation.from_rotvec`` covers numpy arrays on the CPU; the ICP update needs
the same on batches of device tensors inside its loop, hence Rodrigues' formula here.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def rotvec_to_matrix(rotvec: Tensor) -> Tensor:
    """Rodrigues' formula for (C, 3) rotation vectors -> (C, 3, 3), on their device and dtype."""
    angle = rotvec.norm(dim=1)
    axis = rotvec / angle.clamp_min(1e-300)[:, None]
    k = torch.zeros(len(rotvec), 3, 3, dtype=rotvec.dtype, device=rotvec.device)
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k = k - k.transpose(1, 2)
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device)
    return eye + angle.sin()[:, None, None] * k + (1 - angle.cos())[:, None, None] * (k @ k)


def random_rotations(count: int, max_degrees: float, rng: np.random.Generator) -> Tensor:
    """(count, 3, 3) float32 rotations about uniformly random axes by angles uniform in
    [0, max_degrees]: small pose perturbations for augmentation and calibration."""
    axis = rng.normal(size=(count, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    angle = np.deg2rad(rng.uniform(0, max_degrees, size=count))
    return rotvec_to_matrix(torch.from_numpy(axis * angle[:, None])).float()
