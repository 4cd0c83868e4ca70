"""Write rendered views as 8-bit PNGs plus one contact sheet, for inspection by eye."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from PIL import Image

from mvr3d.render.zbuffer import MultiView
from mvr3d.utils.atomic import atomic_write_bytes

SHEET_NAME = "contact_sheet.png"
GAP = 2  # pixels between tiles, so views stay distinguishable


def view_tiles(multiview: MultiView) -> np.ndarray:
    """(V, h, w * C) uint8 tiles; with two channels, depth and shading sit side by side."""
    images = multiview.images.detach().float().cpu().clamp(0.0, 1.0).numpy()
    tiles = np.concatenate(list(images.transpose(1, 0, 2, 3)), axis=2)
    return np.round(tiles * 255.0).astype(np.uint8)


def contact_sheet(tiles: np.ndarray, columns: int | None = None) -> np.ndarray:
    """Tile (V, h, w) images in a near-square grid separated by GAP mid-grey pixels."""
    views, height, width = tiles.shape
    columns = columns or math.ceil(math.sqrt(views))
    rows = math.ceil(views / columns)
    sheet = np.full(
        (rows * (height + GAP) - GAP, columns * (width + GAP) - GAP), 128, dtype=np.uint8
    )
    for view, tile in enumerate(tiles):  # V tiles at image size: not a hot path
        top, left = (view // columns) * (height + GAP), (view % columns) * (width + GAP)
        sheet[top : top + height, left : left + width] = tile
    return sheet


def save_views(multiview: MultiView, out_dir: str | Path) -> list[Path]:
    """Write ``view_XX.png`` per view and ``contact_sheet.png``; return their paths."""
    out_dir = Path(out_dir)
    tiles = view_tiles(multiview)
    digits = max(2, len(str(len(tiles) - 1)))
    paths = [out_dir / f"view_{index:0{digits}d}.png" for index in range(len(tiles))]
    for path, tile in zip(paths, tiles, strict=True):
        _write_png(path, tile)
    sheet_path = out_dir / SHEET_NAME
    _write_png(sheet_path, contact_sheet(tiles))
    return [*paths, sheet_path]


def _write_png(path: Path, pixels: np.ndarray) -> None:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
