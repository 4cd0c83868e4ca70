"""Workflows built on the detector: predicting folders of scans and benchmarking classes."""

from mvr3d.engine.predict import list_scans, predict_files

__all__ = ["list_scans", "predict_files"]
