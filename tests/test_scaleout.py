"""Scale-out (issue 17): predict on Ray or on several devices, benchmark on Ray.

What must hold: the same files as plain ``predict`` (bit-identical on the CPU), a rerun
skipping finished scans, every scan scored and written exactly once even when a worker
is killed with SIGKILL mid-run, and one clear line when Ray is not installed.

A tiny btf_raw detector keeps each scan's scoring in milliseconds, so the time goes into
what is under test: starting workers and restarting the killed one. One local Ray
cluster (2 CPUs) serves the whole module.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

import mvr3d.engine.predict as plain_predict
from mvr3d.cli import main
from mvr3d.detectors import create_detector, load_detector
from mvr3d.engine.predict import MANIFEST_NAME, RECORD_NAME, predict_files
from mvr3d.engine.scaleout import (
    WorkerSpec,
    device_batches,
    parse_devices,
    predict_scaled,
    ray_batches,
)
from mvr3d.engine.scaleout.journal import JOURNAL_NAME
from mvr3d.engine.scaleout.scorer import Scorer
from mvr3d.errors import InputError
from mvr3d.io import write_points
from shapes import blob, bulged

SCANS = 12
# Files that rightly differ between two runs: the run record (its creation time) and
# the bookkeeping of which files predict owns and which scans it finished.
NOT_COMPARED = {RECORD_NAME, MANIFEST_NAME, JOURNAL_NAME}


@contextmanager
def single_threaded() -> Iterator[None]:
    """One torch and one BLAS thread, as every scale-out worker of these tests has (one
    CPU each): float sums then add in the same order, so scores are bit-identical. Restored
    after, so that the rest of the test session keeps its threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Scans in two subfolders, a fitted btf_raw with a threshold (so verdicts and
    regions.csv are written too), and the plain predict's output folder."""
    root = tmp_path_factory.mktemp("scaleout")
    for i in range(SCANS):
        points = blob(2500 + 100 * i, 20 + i)
        write_points(root / "scans" / ("bump" if i % 3 == 0 else "good") / f"s{i:02d}.pcd",
                     bulged(points) if i % 3 == 0 else points)
    train = [blob(2500, seed) for seed in range(3)]
    detector = create_detector("btf_raw").fit(train, progress=False)
    detector.calibrate(train, 0.1)
    detector.save(root / "model")
    with single_threaded():
        model = load_detector(root / "model")
        predict_files(model, root / "scans", root / "plain", batch=2, checkpoint=root / "model",
                      threshold=model.threshold_)
    return {"root": root, "scans": root / "scans", "model": root / "model", "plain": root / "plain"}


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[object]:
    """A local cluster for the module: starting one takes seconds, so the runs share it
    (the engine uses a cluster this process has started and leaves it running)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    yield ray
    ray.shutdown()


def same_outputs(folder: Path, plain: Path) -> None:
    names = sorted(p.name for p in plain.iterdir() if p.name not in NOT_COMPARED)
    assert sorted(p.name for p in folder.iterdir() if p.name not in NOT_COMPARED | {".mvr3d.lock"}) == names
    for name in names:
        assert (folder / name).read_bytes() == (plain / name).read_bytes(), name


def run_scaled(setup: dict[str, Path], output: Path, batches, **kwargs) -> list[dict]:
    model = load_detector(setup["model"])
    return predict_scaled(model, WorkerSpec(setup["model"], threads=1), setup["scans"], output, batches, batch=2,
                          threshold=model.threshold_, **kwargs)


def test_ray_predict_from_the_command_line_equals_plain_predict(setup, ray_cluster, tmp_path, capsys) -> None:
    out = tmp_path / "ray"
    assert main(["predict", "--checkpoint", str(setup["model"]), "--input", str(setup["scans"]), "--output",
                 str(out), "--batch", "2", "--ray", "--ray-workers", "2"]) == 0
    assert f"wrote {SCANS} result(s)" in capsys.readouterr().out
    same_outputs(out, setup["plain"])
    cpus_freed(ray_cluster)


def cpus_freed(ray) -> None:
    """The run's workers are gone, so the next run can have the CPUs (else it would wait)."""
    deadline = time.monotonic() + 30
    while ray.available_resources().get("CPU", 0) < 2:
        assert time.monotonic() < deadline, ray.available_resources()
        time.sleep(0.1)


def test_killed_ray_worker_is_restarted_and_every_scan_is_written_once(setup, ray_cluster, tmp_path,
                                                                      monkeypatch) -> None:
    writes = Counter()
    write = plain_predict.write_points

    def counted(path, *args, **kwargs):
        writes[Path(path).name] += 1
        return write(path, *args, **kwargs)

    monkeypatch.setattr(plain_predict, "write_points", counted)
    workers, killed = [], []

    def kill_the_first_worker(scored, done, total) -> None:
        # The first batch back: its actor has two more in flight (the pool keeps two on
        # each); SIGKILL its process as a crash or the OOM killer would.
        workers.append(scored.worker)
        if not killed:
            pid = int(scored.worker.split()[1])
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    out = tmp_path / "killed"
    model = load_detector(setup["model"])
    spec = WorkerSpec(setup["model"], threads=1)
    rows = predict_scaled(model, spec, setup["scans"], out, ray_batches(spec, None, 2, None), batch=1,
                          threshold=model.threshold_, progress=kill_the_first_worker)
    assert len(workers) == SCANS  # batch=1: one batch per scan
    pids = {worker.split()[1] for worker in workers}
    assert len(pids) == 3, pids  # the two workers, and the killed one's restart
    assert sorted(row["file"] for row in rows) == sorted({row["file"] for row in rows})
    assert len(rows) == SCANS
    assert set(writes.values()) == {1} and len(writes) == 2 * SCANS  # each .txt and .ply once
    same_outputs(out, setup["plain"])
    cpus_freed(ray_cluster)


def test_devices_cpu_cpu_equals_plain_predict(setup, tmp_path) -> None:
    spec = WorkerSpec(setup["model"], threads=1)
    run_scaled(setup, tmp_path / "devices", device_batches(spec, ["cpu", "cpu"]))
    same_outputs(tmp_path / "devices", setup["plain"])


def in_process(spec: WorkerSpec, scored: list[str], stop_after: int | None = None):
    """``batches`` without workers: the resume logic does not depend on where scoring runs."""

    def run(groups: list[list[Path]]):
        scorer = Scorer(spec, "cpu")
        for index, group in enumerate(groups):
            if index == stop_after:
                raise KeyboardInterrupt  # the run is stopped here
            scored.extend(path.stem for path in group)
            yield scorer.score(index, group)

    return run


def test_a_rerun_scores_only_the_scans_not_finished(setup, tmp_path) -> None:
    scans = tmp_path / "scans"
    shutil.copytree(setup["scans"], scans)  # this test changes a scan
    setup = {**setup, "scans": scans}
    spec, out, scored = WorkerSpec(setup["model"], threads=1), tmp_path / "resumed", []
    with single_threaded():
        with pytest.raises(KeyboardInterrupt):
            run_scaled(setup, out, in_process(spec, scored, stop_after=2))
        assert len(scored) == 4 and not (out / "scores.csv").exists()
        first = list(scored)
        scored.clear()
        run_scaled(setup, out, in_process(spec, scored))
        assert len(scored) == SCANS - 4 and not set(scored) & set(first)
        same_outputs(out, setup["plain"])

        scored.clear()
        run_scaled(setup, out, in_process(spec, scored))
        assert scored == []  # all finished: only the tables are written again
        same_outputs(out, setup["plain"])

        write_points(scans / "good" / "s01.pcd", blob(2600, 99))
        run_scaled(setup, out, in_process(spec, scored))
        assert scored == ["s01"]  # the scan changed since: scored again


def test_bad_devices_name_the_bad_entry(setup, tmp_path, capsys) -> None:
    with pytest.raises(InputError, match="'gpu0' is not a device"):
        parse_devices("cpu,gpu0")
    with pytest.raises(InputError, match="comma-separated"):
        parse_devices("cpu,,cpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="'cuda:1' needs a CUDA GPU"):
            parse_devices("cpu,cuda:1")
    assert parse_devices(" cpu, cpu ") == ["cpu", "cpu"]
    assert main(["predict", "--checkpoint", str(setup["model"]), "--input", str(setup["scans"]), "--output",
                 str(tmp_path / "o"), "--devices", "cpu,tpu:0"]) == 2
    assert "'tpu:0'" in capsys.readouterr().err


def test_without_ray_the_commands_say_how_to_get_it(setup, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    assert main(["predict", "--checkpoint", str(setup["model"]), "--input", str(setup["scans"]), "--output",
                 str(tmp_path / "o"), "--ray"]) == 2
    assert main(["benchmark", "--data", str(tmp_path), "--out", str(tmp_path / "b"), "--method", "btf_raw",
                 "--ray", "auto"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and all("pip install 'mvr3d[ray]'" in line for line in lines)
    assert not (tmp_path / "o").exists()  # refused before any work


def test_ray_benchmark_equals_the_plain_benchmark(ray_cluster, tmp_path) -> None:
    from mvr3d.data import demo_shapes_dir, make_benchmark
    from mvr3d.engine.benchmark import run_benchmark
    from mvr3d.engine.results import BenchmarkResults
    from mvr3d.models import MVRConfig

    data = tmp_path / "data"
    make_benchmark(demo_shapes_dir(), data, preset="tiny", seed=0)
    with single_threaded():
        run_benchmark(data, tmp_path / "plain", MVRConfig(), "btf_raw", progress=False)
    assert main(["benchmark", "--data", str(data), "--out", str(tmp_path / "ray"), "--method", "btf_raw",
                 "--ray", "--ray-workers", "2"]) == 0
    plain, ray = BenchmarkResults.read(tmp_path / "plain"), BenchmarkResults.read(tmp_path / "ray")
    assert [c.category for c in ray.classes] == [c.category for c in plain.classes] and len(plain.classes) == 2
    for mine, theirs in zip(ray.classes, plain.classes, strict=True):
        assert mine.object_scores == theirs.object_scores
        assert (mine.o_roc, mine.p_roc, mine.o_aupr, mine.p_aupr) == (theirs.o_roc, theirs.p_roc, theirs.o_aupr,
                                                                      theirs.p_aupr)
    assert (tmp_path / "ray" / "results.md").read_text() == (tmp_path / "plain" / "results.md").read_text()
    np.testing.assert_equal(ray.mean, plain.mean)
