"""What one scale-out worker (a Ray actor or a ``--devices`` process) holds and does."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

from mvr3d.detectors import Detector, load_detector
from mvr3d.errors import InputError
from mvr3d.io import PointCloud, read_points
from mvr3d.scans import ScanScore


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs to rebuild the detector by itself: the checkpoint folder
    (not the fitted object, so that a restarted worker reloads it), what the command line
    changes on a loaded detector (``configure``: a picklable function, the command's own,
    so workers and plain predict apply options alike), and the CPU threads it may use."""

    checkpoint: Path
    configure: Callable[[Detector], Detector] | None = None
    threads: int = 1


@dataclass
class ScoredBatch:
    """One batch's clouds and scores, back from a worker; ``worker`` says which process."""

    index: int
    clouds: list[PointCloud]
    results: list[ScanScore]
    worker: str


# Scores numbered batches of absolute scan paths, yielding each batch as it finishes.
Batches = Callable[[list[list[Path]]], Iterator[ScoredBatch]]


def limit_threads(threads: int) -> None:
    """Run torch and the BLAS/OpenMP pools with ``threads`` threads.

    Why: a float reduction split over a different number of threads adds in another order,
    so a worker and the plain ``predict`` give bit-identical scores only when both run the
    same kernels with the same thread count (one per worker when each has one core).
    """
    torch.set_num_threads(threads)
    threadpool_limits(limits=threads)


def load_for_worker(spec: WorkerSpec, device: str) -> Detector:
    detector = load_detector(spec.checkpoint, device=device)
    if spec.configure is not None:
        detector = spec.configure(detector)
    detector.check_is_fitted()
    return detector


class Scorer:
    """Reads and scores batches of scans with its own copy of the fitted detector.

    Two calls may run at once (a Ray actor with ``max_concurrency=2``): one reads its
    scans while the other scores, and the lock keeps the detector to one batch at a time.
    """

    def __init__(self, spec: WorkerSpec, device: str) -> None:
        limit_threads(spec.threads)
        self.device = device
        self.detector = load_for_worker(spec, device)
        self._lock = threading.Lock()

    def score(self, index: int, paths: list[Path]) -> ScoredBatch:
        clouds = [read_points(path) for path in paths]  # as plain predict reads them
        with self._lock:
            results = self.detector.score_many(clouds)
        return ScoredBatch(index, clouds, results, f"pid {os.getpid()} on {self.device}")


def parse_devices(text: str) -> list[str]:
    """``"cuda:0,cuda:1"`` -> one worker per entry; each "cpu", "cuda" or "cuda:N" with a
    GPU N that exists. :class:`InputError` names the first bad entry."""
    entries = [entry.strip() for entry in text.split(",")]
    if not text.strip() or not all(entries):
        raise InputError(f"--devices {text!r}: give a comma-separated list such as cuda:0,cuda:1 or cpu,cpu")
    for entry in entries:
        problem = _device_problem(entry)
        if problem:
            raise InputError(f"--devices {text!r}: {entry!r} {problem}")
    return entries


def _device_problem(entry: str) -> str | None:
    try:
        device = torch.device(entry)
    except RuntimeError:
        return "is not a device (use cpu, cuda or cuda:N)"
    if device.type == "cpu":
        return None if device.index is None else "names a CPU index; write cpu"
    if device.type != "cuda":
        return f"is a {device.type} device; --devices takes cpu and cuda devices"
    count = torch.cuda.device_count()
    if count == 0:
        return "needs a CUDA GPU and this machine has none"
    if device.index is not None and device.index >= count:
        return f"names GPU {device.index}, and this machine has {count} (cuda:0 to cuda:{count - 1})"
    return None
