"""Every built-in detector by name: MVR and the baselines, registered on import.

``mvr3d.models`` (MVR) and ``mvr3d.baselines`` each register their own methods and do
not import each other; this module imports both, so that the registry seen through it
is complete::

    from mvr3d.detectors import create_detector, list_detectors, load_detector

    detector = create_detector("patchcore_fpfh", seed=0).fit(normal_scans)
    detector.save("model")
    scores = load_detector("model").score(scan)
"""

from __future__ import annotations

import mvr3d.baselines  # noqa: F401  (registers the baselines)
import mvr3d.models  # noqa: F401  (registers mvr)
from mvr3d.models.base import Detector, load_detector
from mvr3d.models.registry import (
    DEFAULT_METHOD,
    create_detector,
    detector_class,
    list_detectors,
    register_detector,
)

__all__ = ["DEFAULT_METHOD", "Detector", "create_detector", "detector_class", "list_detectors", "load_detector", "register_detector"]
