"""Coverage-guided fuzzing of ``mvr3d.io.read_points`` with atheris.

The first input byte picks the file extension (``FORMATS[byte % len(FORMATS)]``) and the rest is the
file's content, so one corpus can exercise every reader; ``MVR3D_FUZZ_FORMAT=pcd`` pins the
extension instead, for per-format runs. A reader may only return a valid cloud or raise
:class:`InputError` naming the file; anything else (an uncaught exception, a hang past
``-timeout``, memory past ``-rss_limit_mb``) is a finding.

    MVR3D_FUZZ_FORMAT=pcd .venv/bin/python fuzz/fuzz_readers.py fuzz/corpus/pcd \
        -max_total_time=120 -timeout=10 -rss_limit_mb=2048 -jobs=1
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import atheris
import numpy as np

with atheris.instrument_imports(include=["mvr3d"]):
    from mvr3d.errors import InputError
    from mvr3d.io import PointCloud, read_points

# New formats go at the end, so existing corpus files keep their format byte.
FORMATS = (".pcd", ".ply", ".txt", ".xyz", ".npy", ".npz", ".csv", ".pts")
# One fixed folder per process: creating a fresh temp dir per input would dominate the run.
_WORKDIR = Path(tempfile.mkdtemp(prefix="mvr3d-fuzz-"))


def split_input(data: bytes, pinned: str | None = None) -> tuple[str, bytes]:
    """(extension, file content) for one fuzz input."""
    if not data:
        return pinned or FORMATS[0], b""
    suffix = pinned or FORMATS[data[0] % len(FORMATS)]
    return suffix, data[1:]


def check_cloud(cloud: PointCloud) -> None:
    """Whatever a reader returns must already be usable downstream."""
    points = cloud.points
    assert points.ndim == 2 and points.shape[1] == 3, points.shape
    assert points.dtype in (np.float32, np.float64), points.dtype
    assert np.isfinite(points).all()
    if cloud.values is not None:
        assert cloud.values.shape == (len(points),), cloud.values.shape


def check_error(error: InputError, path: Path) -> None:
    assert str(error).startswith(str(path)), str(error)


def test_one_input(data: bytes) -> None:
    pinned = os.environ.get("MVR3D_FUZZ_FORMAT")
    suffix, content = split_input(data, f".{pinned}" if pinned else None)
    path = _WORKDIR / f"input{suffix}"
    path.write_bytes(content)
    try:
        cloud = read_points(path)
    except InputError as error:
        check_error(error, path)
        return
    check_cloud(cloud)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
