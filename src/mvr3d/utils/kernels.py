"""Convolution kernels shared by the renderer and the score maps."""

from __future__ import annotations

import torch


def gaussian_kernel(sigma: float, radius: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Normalised 1-D Gaussian taps at offsets -radius..radius (sigma in pixels)."""
    offsets = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()
