"""Rendering settings: one frozen dataclass, serialisable for reproducible runs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from mvr3d.errors import InputError

PROJECTIONS = ("orthographic", "perspective")
CONTENTS = ("depth", "shading", "depth+shading")
DEPTH_RANGES = ("view", "scan", "near")
# Pixel indices are computed exactly in float32 (< 2**24).
MAX_RENDER_SIZE = 4096


@dataclass(frozen=True)
class RenderConfig:
    """How a point cloud becomes multi-view images (paper II-C; DESIGN.md step 2).

    ``render_size`` is the z-buffer resolution; images are area-pooled to ``image_size``
    (the paper renders at 672 and pools to 224 to suppress aliasing and noise).
    ``depth_tolerance`` is in units of a point's screen footprint (its radius is about
    max(render pixel size, estimated point spacing), measured to the footprint's corner):
    a point is visible when no point in its footprint is nearer by more than that, so
    it is the steepest slope (depth change per screen distance) still seen.
    ``depth_range``: "view" stretches each view's visible depth to the full grey range
    (most contrast for the backbone); "scan" uses the bounding sphere, so one depth maps
    to one grey level in every view of a scan; "near" puts each view's nearest surface at
    full brightness and darkens at a fixed rate (the bounding-sphere diameter) behind it,
    which keeps grey levels comparable between a partial scan and a complete template
    whose bounding boxes differ.
    ``shading_sigma`` (network-image pixels) smooths the depth, over covered pixels only,
    before the shading's normals are taken from it; 0 uses the pooled depth as it is.
    """

    render_size: int = field(default=672, metadata={"help": "z-buffer resolution"})
    image_size: int = field(default=224, metadata={"help": "network input resolution"})
    projection: str = field(default="orthographic", metadata={"choices": PROJECTIONS, "help": "camera model"})
    content: str = field(default="depth+shading", metadata={"choices": CONTENTS, "help": "what the images show"})
    fill_holes: bool = field(default=True, metadata={"help": "fill empty pixels inside the surface"})
    margin: float = 0.05
    depth_tolerance: float = 1.5
    background: float = 0.0
    fov_degrees: float = 30.0
    depth_range: str = field(default="view", metadata={"choices": DEPTH_RANGES, "help": "grey-level range of depth"})
    shading_sigma: float = 0.0

    def __post_init__(self) -> None:
        for name in ("render_size", "image_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"RenderConfig.{name} must be a positive integer, got {value!r}")
        if self.render_size > MAX_RENDER_SIZE:
            raise InputError(
                f"RenderConfig.render_size must be <= {MAX_RENDER_SIZE}, got {self.render_size}"
            )
        if self.render_size % self.image_size:
            raise InputError(
                f"RenderConfig.render_size ({self.render_size}) must be a multiple of "
                f"image_size ({self.image_size}) so that area pooling is exact"
            )
        _check_choice("projection", self.projection, PROJECTIONS)
        _check_choice("content", self.content, CONTENTS)
        _check_choice("depth_range", self.depth_range, DEPTH_RANGES)
        if not 0.0 <= self.margin < 1.0:
            raise InputError(f"RenderConfig.margin must be in [0, 1), got {self.margin!r}")
        if not self.depth_tolerance > 0.0:
            raise InputError(
                f"RenderConfig.depth_tolerance must be > 0, got {self.depth_tolerance!r}"
            )
        if not 0.0 <= self.shading_sigma <= 16.0:
            raise InputError(
                f"RenderConfig.shading_sigma must be in [0, 16] pixels, got {self.shading_sigma!r}"
            )
        if not 0.0 <= self.background <= 1.0:
            raise InputError(f"RenderConfig.background must be in [0, 1], got {self.background!r}")
        if not 1.0 <= self.fov_degrees <= 120.0:
            raise InputError(
                f"RenderConfig.fov_degrees must be in [1, 120], got {self.fov_degrees!r}"
            )

    @property
    def pool_factor(self) -> int:
        return self.render_size // self.image_size

    @property
    def channels(self) -> int:
        return 2 if self.content == "depth+shading" else 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RenderConfig:
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown RenderConfig field(s): {', '.join(unknown)}")
        return cls(**data)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InputError(f"RenderConfig.{name} must be one of {choices}, got {value!r}")
