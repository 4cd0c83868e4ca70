"""Which points of a cloud a scanner looking from one direction sees (z-buffer visibility)."""

from __future__ import annotations

import numpy as np
import torch

from mvr3d.render.config import RenderConfig
from mvr3d.render.poses import look_from
from mvr3d.render.zbuffer import render_views

# Fewer visible points than this and the direction is taken to see the whole cloud: a cut
# that small is no scan.
MIN_VISIBLE = 16


def visible_from(points: np.ndarray, direction: np.ndarray, config: RenderConfig | None = None, *,
                 centre: np.ndarray | None = None, radius: float | None = None,
                 device: str | torch.device = "cpu") -> np.ndarray:
    """Indices of the (N, 3) ``points`` seen from unit ``direction`` (hidden points removed by
    the z-buffer at ``config``'s resolution); every index when fewer than MIN_VISIBLE are."""
    rotation = look_from(torch.as_tensor(np.asarray(direction, dtype=np.float64))[None])
    cloud = torch.from_numpy(np.ascontiguousarray(points)).to(device)
    views = render_views(cloud, rotation.to(device), config, centre=centre, radius=radius)
    visible = views.visible[0].cpu().numpy()
    return np.flatnonzero(visible) if visible.sum() >= MIN_VISIBLE else np.arange(len(points))
