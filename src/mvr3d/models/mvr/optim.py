"""Optimiser and learning-rate schedule of the student (Dinomaly recipe)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import timm
import torch
from timm.optim import AdamWLegacy

from mvr3d.errors import MVR3DError

MIN_TIMM = "1.0.31"  # the first with AdamWLegacy(clipping_threshold=...); pyproject.toml asks for it


def stable_adamw(
    params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    """StableAdamW with AMSGrad: timm's AdamW with RMS update clipping (threshold 1)."""
    try:
        return AdamWLegacy(
            params, lr=lr, betas=(0.9, 0.999), eps=1e-10, weight_decay=weight_decay,
            amsgrad=True, clipping_threshold=1.0,
        )
    except TypeError as error:
        if "clipping_threshold" not in str(error):
            raise
        raise MVR3DError(f"MVR training needs timm >= {MIN_TIMM} (its AdamW clips updates); this is timm "
                         f"{timm.__version__}: pip install 'timm>={MIN_TIMM}'") from None


def warm_cosine(iteration: int, total: int, warmup: int, final_ratio: float) -> float:
    """Multiplier of the base lr: linear warm-up, then cosine decay to ``final_ratio``."""
    if iteration < warmup:
        return (iteration + 1) / warmup
    progress = (iteration - warmup) / max(1, total - warmup)
    return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def warm_cosine_scheduler(
    optimizer: torch.optim.Optimizer, total: int, warmup: int, final_ratio: float
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda it: warm_cosine(it, total, warmup, final_ratio)
    )
