"""``--ray [ADDRESS]``: predict and benchmark on a Ray cluster (a local one by default).

Predict: one scoring actor per GPU (or ``workers`` CPU actors), each loading the detector
from the checkpoint folder and reading its own scans; Ray's ActorPool hands out batches,
two per actor so that one batch is read while the other is scored. An actor whose process
dies is restarted by Ray, which reruns the calls it had in flight; the driver writes every
result it gets, and gets each batch once. Benchmark: one Ray task per class.

Workers on other machines need mvr3d installed and the scans, checkpoint and data at the
same paths (a shared file system); predict's outputs are written by the driver.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

from mvr3d.engine.benchmark import benchmark_classes, run_benchmark
from mvr3d.engine.results import BenchmarkResults
from mvr3d.engine.scaleout.scorer import Batches, ScoredBatch, Scorer, WorkerSpec, limit_threads
from mvr3d.errors import InputError, MVR3DError
from mvr3d.models import MVRConfig
from mvr3d.utils.atomic import atomic_write_text

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'mvr3d[ray]'"
# A batch (or class) whose worker keeps dying (out of memory, a crashing driver) fails
# after this many restarts instead of looping; the finished scans are kept.
MAX_RESTARTS = 3


def require_ray() -> ModuleType:
    """The ``ray`` module, or one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise MVR3DError(f"--ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


@contextmanager
def ray_cluster(address: str | None) -> Iterator[ModuleType]:
    """Ray connected to ``address`` (or RAY_ADDRESS, or a new local cluster); one this
    process had already started (a notebook, the tests) is used as it is and left running."""
    ray = require_ray()
    started = not ray.is_initialized()
    if started:
        local = {} if address else {"include_dashboard": False}  # a dashboard costs seconds on start
        try:
            ray.init(address=address or None, logging_level=logging.WARNING, **local)
        except (ConnectionError, ValueError, RuntimeError) as error:
            raise MVR3DError(f"--ray {address or ''}: cannot start or reach a Ray cluster ({error})".strip()) from None
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


@dataclass(frozen=True)
class Slots:
    """How many workers run at once and what each one gets."""

    workers: int
    cpus: int  # per worker: Ray reserves them, and torch uses as many threads
    gpus: int  # 0 or 1 per worker
    device: str


def worker_slots(ray: ModuleType, workers: int | None, device: str | None) -> Slots:
    """One worker per GPU of the cluster, or ``workers`` CPU workers sharing its CPUs
    (default one per CPU); ``device`` "cpu" keeps to CPUs even with GPUs there."""
    if workers is not None and workers < 1:
        raise InputError(f"--ray-workers must be at least 1, got {workers}")
    resources = ray.cluster_resources()
    cpus, gpus = int(resources.get("CPU", 1)), int(resources.get("GPU", 0))
    wants_gpu = device is not None and device.startswith("cuda")
    if wants_gpu and not gpus:
        raise InputError(f"--device {device}: the Ray cluster has no GPU")
    if gpus and device != "cpu":
        count = workers or gpus
        if count > gpus:
            raise InputError(f"--ray-workers {count}: the Ray cluster has {gpus} GPU(s), one per worker")
        return Slots(count, max(1, cpus // count), 1, "cuda")
    count = workers or cpus
    if count > cpus:
        raise InputError(f"--ray-workers {count}: the Ray cluster has {cpus} CPU(s), at least one per worker")
    return Slots(count, cpus // count, 0, "cpu")


def ray_batches(spec: WorkerSpec, address: str | None, workers: int | None,
                device: str | None) -> Batches:
    """The ``batches`` of :func:`~mvr3d.engine.scaleout.predict.predict_scaled` on Ray."""

    def run(groups: list[list[Path]]) -> Iterator[ScoredBatch]:
        with ray_cluster(address) as ray:
            slots = worker_slots(ray, workers, device)
            # Absolute: a Ray worker does not run in this process's folder.
            spec_here = replace(spec, checkpoint=spec.checkpoint.absolute(), threads=slots.cpus)
            yield from _score_on_actors(ray, spec_here, slots, groups)

    return run


def _score_on_actors(ray: ModuleType, spec: WorkerSpec, slots: Slots,
                     groups: list[list[Path]]) -> Iterator[ScoredBatch]:
    from ray.util import ActorPool

    actor = ray.remote(Scorer).options(
        num_cpus=slots.cpus, num_gpus=slots.gpus, max_concurrency=2,
        max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS,
    )
    actors = [actor.remote(spec, slots.device) for _ in range(min(slots.workers, len(groups)))]
    log.info("scoring %d batch(es) on %d Ray worker(s), %d CPU(s) and %d GPU(s) each",
             len(groups), len(actors), slots.cpus, slots.gpus)
    # Each actor twice: the pool then keeps two calls on every actor, one reading its scans
    # while the other scores (the actor's lock lets one batch at a time use the detector).
    pool = ActorPool(actors + actors)
    try:
        for index, group in enumerate(groups):
            pool.submit(lambda worker, job: worker.score.remote(*job), (index, group))
        while pool.has_next():
            yield _next(ray, pool)
    finally:
        for handle in actors:
            ray.kill(handle, no_restart=True)


def _next(ray: ModuleType, pool) -> ScoredBatch:
    """The next finished batch; a worker's own error (a bad scan) as that error."""
    try:
        return pool.get_next_unordered()
    except ray.exceptions.RayTaskError as error:
        if isinstance(error.cause, MVR3DError):
            raise error.cause from None
        raise
    except ray.exceptions.RayActorError as error:
        if error.actor_init_failed:  # not retried: loading would fail again
            raise MVR3DError(f"a Ray worker could not load the detector (is the checkpoint at the same path on "
                             f"every node?): {_last_line(error)}") from None
        raise MVR3DError(f"a Ray scoring worker died and was restarted {MAX_RESTARTS} times ({_last_line(error)}); "
                         "the scans finished so far are kept: rerun the same command to score the rest") from None


def _last_line(error: BaseException) -> str:
    """The exception line at the end of a worker's traceback, or the error's name."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def benchmark_on_ray(
    root: Path, out: Path, config: MVRConfig, method: str, classes: list[str] | None = None, *,
    address: str | None = None, workers: int | None = None, device: str | None = None, **run_options: object,
) -> BenchmarkResults:
    """:func:`~mvr3d.engine.benchmark.run_benchmark` with one Ray task per class (its own
    GPU, or an equal share of the CPUs; ``device`` "cpu" keeps to CPUs); classes already
    in ``out`` are kept (resume). ``run_options`` (``false_alarm_rate``, ...) go to every
    run_benchmark call, so the results and their settings key are run_benchmark's own."""
    classes = classes or benchmark_classes(root)
    done = [category for category in classes if (out / "classes" / f"{category}.json").is_file()]
    if done:
        # Refuses results made with other settings before any new work is spent.
        run_benchmark(root, out, config, method, done, progress=False, **run_options)
    todo = [category for category in classes if category not in done]
    if todo:
        with ray_cluster(address) as ray:
            slots = worker_slots(ray, workers, None if device == "auto" else device)
            task = ray.remote(_evaluate_class).options(num_cpus=slots.cpus, num_gpus=slots.gpus,
                                                       max_retries=MAX_RESTARTS)
            job = (config, method, slots.cpus, run_options)
            pending = {task.remote(root.absolute(), category, *job): category for category in todo}
            _gather(ray, pending, out)
    return run_benchmark(root, out, config, method, classes, progress=False, **run_options)


def _gather(ray: ModuleType, pending: dict, out: Path) -> None:
    """Save each class's result as it comes, as run_benchmark does, so a rerun resumes."""
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        category = pending.pop(ready[0])
        try:
            saved = ray.get(ready[0])
        except ray.exceptions.RayTaskError as error:
            if isinstance(error.cause, MVR3DError):
                raise error.cause from None
            raise
        atomic_write_text(out / "classes" / f"{category}.json", saved)
        log.info("%s: done (%d class(es) left)", category, len(pending))


def _evaluate_class(root: Path, category: str, config: MVRConfig, method: str, threads: int,
                    run_options: dict) -> str:
    """One class in a Ray worker: run_benchmark itself (so evaluate_class and the results
    format are its own) into a scratch folder; its class file goes back to the driver."""
    limit_threads(threads)
    with tempfile.TemporaryDirectory() as scratch:
        run_benchmark(root, Path(scratch), config, method, [category], progress=False, **run_options)
        return (Path(scratch) / "classes" / f"{category}.json").read_text()
