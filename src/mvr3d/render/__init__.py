"""Multi-view rendering of point clouds: poses, camera fit, z-buffer, images."""

from mvr3d.render.config import RenderConfig
from mvr3d.render.poses import euler_to_matrix, fibonacci_poses, make_poses, paper_poses
from mvr3d.render.zbuffer import (
    MultiView,
    RenderedBatch,
    render_batch,
    render_views,
    to_rgb,
)

__all__ = [
    "MultiView",
    "RenderConfig",
    "RenderedBatch",
    "euler_to_matrix",
    "fibonacci_poses",
    "make_poses",
    "paper_poses",
    "render_batch",
    "render_views",
    "to_rgb",
]
