"""MVR model: DINOv2 teacher, Dinomaly student, training, scoring and persistence."""

from mvr3d.models.base import Detector, load_detector
from mvr3d.models.components.backbones import BACKBONES, create_backbone, list_backbones
from mvr3d.models.mvr.config import MVRConfig, Runtime
from mvr3d.models.mvr.detector import MVRDetector, ScanScore
from mvr3d.models.registry import create_detector, detector_class, list_detectors, register_detector

__all__ = [
    "BACKBONES",
    "Detector",
    "MVRConfig",
    "MVRDetector",
    "Runtime",
    "ScanScore",
    "create_backbone",
    "create_detector",
    "detector_class",
    "list_backbones",
    "list_detectors",
    "load_detector",
    "register_detector",
]
