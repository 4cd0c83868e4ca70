"""Scale-out: predict on several devices of one machine, or predict and benchmark on Ray.

``--devices`` needs nothing more than torch; ``--ray`` needs the ``ray`` extra, imported
only when used (:func:`require_ray` says how to install it).
"""

from mvr3d.engine.scaleout.devices import default_threads, device_batches
from mvr3d.engine.scaleout.on_ray import INSTALL_HINT, benchmark_on_ray, ray_batches, require_ray
from mvr3d.engine.scaleout.predict import predict_scaled
from mvr3d.engine.scaleout.scorer import ScoredBatch, WorkerSpec, parse_devices

__all__ = [
    "INSTALL_HINT",
    "ScoredBatch",
    "WorkerSpec",
    "benchmark_on_ray",
    "default_threads",
    "device_batches",
    "parse_devices",
    "predict_scaled",
    "ray_batches",
    "require_ray",
]
