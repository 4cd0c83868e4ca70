"""Host-side work of several scans on a few threads.

Voxel grids, hashes and sorts over 100 k-point scans cost milliseconds each in numpy,
which releases the GIL while it sorts and reduces: a batch's host work then overlaps
itself instead of leaving a GPU idle while it runs one scan after another.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

HOST_THREADS = 8


def host_map(function: Callable[[Item], Result], items: Sequence[Item], threads: int = HOST_THREADS) -> list[Result]:
    """``[function(item) for item in items]``, from up to ``threads`` threads (never more
    than the CPUs or the items); in order, and inline for a single item."""
    workers = min(threads, len(items), os.cpu_count() or 1)
    if workers < 2:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(function, items))
