"""Comparison baselines: :class:`~mvr3d.models.base.Detector` subclasses, registered by
name on import (``mvr3d.detectors`` lists them with MVR).

``BASELINES`` maps each name to its class, constructible with no arguments (all take
``seed``). The Real3D-AD rows they stand for: ``btf_raw`` / ``btf_fpfh`` = BTF,
``patchcore_fpfh`` = PatchCore (FPFH+Raw), ``registration`` = Reg3D-AD-like; ``template`` = distance to the fused templates'
surface in noise units (the project's geometric detector).
"""

from mvr3d.baselines.btf import BTFDetector, BTFFPFHDetector, BTFRawDetector, PatchCoreDetector
from mvr3d.baselines.patchcore import PatchCoreMemory, greedy_coreset
from mvr3d.baselines.registration import RegistrationDetector
from mvr3d.baselines.template import TemplateDetector
from mvr3d.models.base import Detector

# Named by the registry (each class's ``name``), so the two cannot disagree.
BASELINES: dict[str, type[Detector]] = {
    cls.name: cls
    for cls in (BTFRawDetector, BTFFPFHDetector, PatchCoreDetector, RegistrationDetector, TemplateDetector)
}

__all__ = [
    "BASELINES",
    "BTFDetector",
    "BTFFPFHDetector",
    "BTFRawDetector",
    "PatchCoreDetector",
    "PatchCoreMemory",
    "RegistrationDetector",
    "TemplateDetector",
    "greedy_coreset",
]
