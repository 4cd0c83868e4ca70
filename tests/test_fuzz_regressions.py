"""Inputs that once crashed a reader (fuzzing or hand probing, see docs/robustness.md).

Each must now give a valid cloud or an InputError that names the file; the expected
message fragment pins the specific fix, so a regression to a vaguer error shows up too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mvr3d.errors import InputError
from mvr3d.io import read_points

REGRESSIONS = Path(__file__).resolve().parent.parent / "fuzz" / "regressions"
FILES = sorted(p for p in REGRESSIONS.iterdir() if p.is_file()) if REGRESSIONS.is_dir() else []

# File name -> fragment of the InputError it must raise (None: any InputError or a cloud).
EXPECTED: dict[str, str | None] = {
    "npy_bad_zip_magic.npy": "not a readable .npy file",
    "npy_header_1e12_points.npy": "not a readable .npy file",
    "npy_header_tokenize_error.npy": "TokenError",
    "npy_is_npz_archive.npy": "is a .npz archive",
    "npz_member_header_1e12_points.npz": "claims shape (1000000000000, 3)",
    "pcd_huge_count_binary.pcd": "bytes per point",
    "pcd_huge_count_compressed.pcd": "bytes per point",
    "ply_duplicate_face_element.ply": "declares element 'face' twice",
    "ply_duplicate_vertex_element.ply": "declares element 'vertex' twice",
    "ply_huge_list_length.ply": "runs past the end of the file",
}


def test_regression_files_exist() -> None:
    assert {p.name for p in FILES} >= set(EXPECTED)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_regression_input(path: Path) -> None:
    try:
        cloud = read_points(path)
    except InputError as error:
        assert str(error).startswith(str(path))
        fragment = EXPECTED.get(path.name)
        assert fragment is None or fragment in str(error), str(error)
        return
    points = cloud.points
    assert points.ndim == 2 and points.shape[1] == 3 and len(points) >= 1
    assert np.isfinite(points).all()
