"""Resources of scoring: the few threads that overlap scans' host work on a GPU (with the
linalg warm-up they need), and the memory estimate and guard that fail early and clearly."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager

import torch

from mvr3d.utils import memory

SCORING_THREADS = 4

# Peak memory of scoring one scan, per point and view (pixel index, visibility, render
# working set) and per point (coordinates in float64, scores, neighbour look-ups).
# Calibrated on benchmarks/huge_scan_cpu.md (peak RSS grows ~190 B per point at 27 views).
VIEW_BYTES_PER_POINT = 8
BYTES_PER_POINT = 64
FIXED_BYTES = 2**30


def run_each(function: Callable, items: list[tuple], *, threaded: bool, warm_up: Callable[[], None],
             executor: Callable[..., Executor] = ThreadPoolExecutor) -> list:
    """``function(*item)`` for every item; with ``threaded``, from a few threads at once, so
    that one scan's host work and syncs overlap the others' kernels (one stream, so results
    do not depend on the interleaving). ``warm_up`` runs on the calling thread first."""
    if not threaded or len(items) < 2:
        return [function(*item) for item in items]
    warm_up()
    with executor(max_workers=min(len(items), SCORING_THREADS)) as pool:
        return list(pool.map(lambda item: function(*item), items))


def warm_up_linalg(device: torch.device, warmed: set[str]) -> None:
    """Run every linalg routine the scoring threads use once on the calling thread, unless
    ``device`` is in ``warmed`` (the devices already warmed up in this process).

    torch loads its CUDA linalg backends lazily and not thread-safely ("lazy wrapper
    should be called at most once" from solve_ex when several threads hit it first), so
    the first call of each must happen before the thread pool starts.
    """
    if str(device) in warmed:
        return
    eye = torch.eye(3, dtype=torch.float64, device=device).expand(2, 3, 3).contiguous()
    torch.linalg.solve_ex(torch.eye(6, dtype=torch.float64, device=device)[None], torch.ones(1, 6, dtype=torch.float64, device=device))
    torch.linalg.svd(eye)
    torch.linalg.det(eye)
    torch.linalg.cross(eye[0], eye[1], dim=1)
    torch.linalg.eigh(eye)
    warmed.add(str(device))


def memory_needed(points: int, views: int) -> int:
    """Rough peak bytes to render and score one scan (measured in benchmarks/huge_scan.py)."""
    return points * (VIEW_BYTES_PER_POINT * views + BYTES_PER_POINT) + FIXED_BYTES


@contextmanager
def memory_guard(needed: int, largest: int, views: int, device: torch.device) -> Iterator[None]:
    """Fail early and clearly when scoring cannot fit, and likewise if the allocator gives up."""
    what = f"scoring {largest:,}-point scans from {views} views"
    free = memory.available_bytes(device)
    per_point = memory_needed(1, views) - FIXED_BYTES
    fits = largest // 2 if free is None else int((0.8 * free - FIXED_BYTES) / per_point)
    if fits < 100:
        advice = f"free some memory: even a small scan needs about {FIXED_BYTES / memory.GIB:.1f} GiB here"
    else:
        advice = (
            f"set max_points (--max-points, e.g. {min(fits, largest // 2):,}) to voxel-downsample large "
            "scans (every original point still gets its voxel's score), or score fewer scans at once"
        )
    memory.require(needed, device, what, advice)
    try:
        yield
    except (MemoryError, RuntimeError) as error:
        if not memory.is_out_of_memory(error):
            raise
        raise memory.out_of_memory(needed, device, what, advice) from error
