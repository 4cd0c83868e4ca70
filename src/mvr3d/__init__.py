"""mvr3d: unsupervised 3D anomaly detection on point clouds by Multi-View Reconstruction."""

__version__ = "0.1.0"
