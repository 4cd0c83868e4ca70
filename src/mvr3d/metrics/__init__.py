"""Real3D-AD metrics: object-level and pooled point-level AUROC and AUPR."""

from mvr3d.metrics.ranking import PooledScores, aupr, auroc, roc_curve

__all__ = ["PooledScores", "aupr", "auroc", "roc_curve"]
