"""One call that seeds every random number generator mvr3d uses."""

from __future__ import annotations

import random

import numpy as np


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch; return a NumPy generator for local use."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch  # local: heavy dependency; mvr3d.utils (and so mvr3d.io) must not load torch
    except ImportError:
        pass
    else:
        torch.manual_seed(seed)
    return np.random.default_rng(seed)
