"""Visualisation helpers: colour maps for per-point scores."""

from mvr3d.utils.colormap import COLORMAPS, colormap

__all__ = ["COLORMAPS", "colormap"]
