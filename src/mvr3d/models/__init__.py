"""MVR model: DINOv2 teacher, Dinomaly student, training, scoring and persistence."""

from mvr3d.models.backbones import BACKBONES, create_backbone, list_backbones
from mvr3d.models.config import MVRConfig
from mvr3d.models.detector import MVRDetector, ScanScore

__all__ = ["BACKBONES", "MVRConfig", "MVRDetector", "ScanScore", "create_backbone", "list_backbones"]
