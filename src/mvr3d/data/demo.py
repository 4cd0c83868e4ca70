"""Built-in demo shapes (MIT-licensed CAD parts of the trimesh project) and a demo dataset."""

from __future__ import annotations

import shutil
import tempfile
from importlib.resources import as_file, files
from pathlib import Path

from mvr3d.data.builder import make_benchmark

_extracted: Path | None = None


def demo_shapes_dir() -> Path:
    """Folder of the packaged demo meshes (extracted once if the package is zipped)."""
    global _extracted
    resource = files("mvr3d.data").joinpath("shapes")
    if isinstance(resource, Path):
        return resource
    if _extracted is None:
        target = Path(tempfile.mkdtemp(prefix="mvr3d-shapes-"))
        with as_file(resource) as folder:
            shutil.copytree(folder, target, dirs_exist_ok=True)
        _extracted = target
    return _extracted


def make_demo_dataset(out_root: str | Path, seed: int = 0) -> Path:
    """Build the ``tiny`` benchmark from the built-in shapes; returns ``out_root``."""
    make_benchmark(demo_shapes_dir(), out_root, preset="tiny", seed=seed)
    return Path(out_root)
