"""Comparison baselines with the MVRDetector interface: ``fit(scans)``, ``score(scan)``.

``BASELINES`` maps a benchmark name to a class constructible with no arguments (all
take ``seed``). The Real3D-AD rows they stand for: ``btf_raw`` / ``btf_fpfh`` = BTF,
``patchcore_fpfh`` = PatchCore (FPFH+Raw), ``registration`` = Reg3D-AD-like; ``template`` = distance to the fused templates'
surface in noise units (the project's geometric detector).
"""

from mvr3d.baselines.btf import BTFDetector, BTFFPFHDetector, BTFRawDetector, PatchCoreDetector
from mvr3d.baselines.patchcore import PatchCoreMemory, greedy_coreset
from mvr3d.baselines.registration import RegistrationDetector
from mvr3d.baselines.template import TemplateDetector

BASELINES: dict[str, type] = {
    "btf_raw": BTFRawDetector,
    "btf_fpfh": BTFFPFHDetector,
    "patchcore_fpfh": PatchCoreDetector,
    "registration": RegistrationDetector,
    "template": TemplateDetector,
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
