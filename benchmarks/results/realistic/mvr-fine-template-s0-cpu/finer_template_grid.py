"""Throwaway: benchmarks/mvr_reference_variants.py with the templates on a finer voxel grid.

    python finer_template_grid.py RATIO [mvr_reference_variants.py arguments]

RATIO replaces TemplateAligner's voxel_size_ratio (0.004 x the templates' median diagonal),
which MVRConfig does not expose; the template reference is the aligner's voxel copy, so it
changes too.
"""

import sys
from pathlib import Path

import mvr3d.models.mvr.detector as detector_module
from mvr3d.geometry.aligner import TemplateAligner

RATIO = float(sys.argv.pop(1))


class FinerAligner(TemplateAligner):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("voxel_size_ratio", RATIO)
        super().__init__(*args, **kwargs)


detector_module.TemplateAligner = FinerAligner
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # benchmarks/
import mvr_reference_variants  # noqa: E402

mvr_reference_variants.main()
