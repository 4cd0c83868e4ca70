"""Visualisation helpers: colour maps for per-point scores."""

from mvr3d.visualization.colormap import COLORMAPS, colormap

__all__ = ["COLORMAPS", "colormap"]
