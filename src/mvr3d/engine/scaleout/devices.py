"""``--devices cuda:0,cuda:1``: one worker process per device on this machine, no Ray.

A process pool (spawn: CUDA cannot be forked) whose workers each take one device from a
queue when they start and keep their own detector on it; the pool hands each worker the
next batch when it is free, so a slower device simply scores fewer batches.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from mvr3d.engine.scaleout.scorer import Batches, ScoredBatch, Scorer, WorkerSpec
from mvr3d.errors import MVR3DError

_scorer: Scorer | None = None  # the worker process's own, set by _start


def default_threads(workers: int) -> int:
    """An equal share of this machine's cores per worker (at least one)."""
    return max(1, len(os.sched_getaffinity(0)) // workers)


def device_batches(spec: WorkerSpec, devices: list[str]) -> Batches:
    """The ``batches`` of :func:`~mvr3d.engine.scaleout.predict.predict_scaled` for these devices."""

    def run(groups: list[list[Path]]) -> Iterator[ScoredBatch]:
        return _run(spec, devices, groups)

    return run


def _run(spec: WorkerSpec, devices: list[str], groups: list[list[Path]]) -> Iterator[ScoredBatch]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    for device in devices:
        queue.put(device)
    pool = ProcessPoolExecutor(len(devices), mp_context=context, initializer=_start, initargs=(spec, queue))
    try:
        # No list of the futures kept here: as_completed lets go of each one it has given,
        # so a scored batch is freed once written, not at the end of the run.
        for future in as_completed([pool.submit(_score, index, group) for index, group in enumerate(groups)]):
            yield future.result()
    except BrokenProcessPool as error:
        raise MVR3DError(f"a --devices worker process died ({error}); the scans finished so far are kept: "
                         "rerun the same command to score the rest") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _start(spec: WorkerSpec, queue) -> None:
    global _scorer
    _scorer = Scorer(spec, queue.get())


def _score(index: int, paths: list[Path]) -> ScoredBatch:
    assert _scorer is not None, "the pool's initializer sets it"
    return _scorer.score(index, paths)
