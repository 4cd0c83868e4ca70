"""Scale-out: plain `mvr3d predict` vs the same scans on Ray workers and on --devices.

    python benchmarks/scaleout.py                                   # CPU: 2 Ray workers, cpu,cpu
    python benchmarks/scaleout.py --method mvr --scans 8            # a slower method (tiny random MVR)
    python benchmarks/scaleout.py --device cuda --devices cuda:0,cuda:1 --checkpoint MODEL --input SCANS

Without --checkpoint, fits the method on synthetic ellipsoids and scores synthetic scans
(every third with a bump). Each scaled-out run must give the plain run's scores exactly
(asserted; on the CPU the plain run then uses one torch/BLAS thread, as each worker does).
Reports the wall time, the start-up (Ray cluster, workers loading the detector) and the
steady time per scan once workers run; the overhead per scan is what a worker spends
per scan beyond plain predict's time (reading, shipping the result, the driver's writes).
Writes ``benchmarks/scaleout_<device>.md``.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

from common import ellipsoid, machine, markdown_table
from mvr3d.detectors import create_detector, load_detector
from mvr3d.engine.predict import predict_files
from mvr3d.engine.results import read_scores
from mvr3d.engine.scaleout import (
    WorkerSpec,
    device_batches,
    predict_scaled,
    ray_batches,
    require_ray,
)
from mvr3d.io import write_points
from mvr3d.models import MVRConfig
from mvr3d.render import RenderConfig
from mvr3d.utils.atomic import atomic_write_text


def tiny_mvr() -> MVRConfig:
    """tests' tiny MVR (random tiny ViT): seconds per scan on a CPU, no weights to fetch."""
    return MVRConfig(
        backbone="tiny_test", weights="random", render=RenderConfig(render_size=112, image_size=56, depth_range="scan"),
        views=3, augment_rotations=1, augment_degrees=20.0, iterations=2, batch_size=4, warmup=1,
        map_blur_sigma=1.0, train_directions=4, side_candidates=16, calibration_scans=2,
    )


def synthetic(folder: Path, method: str, scans: int, points: int, device: str) -> tuple[Path, Path]:
    """A fitted checkpoint and a folder of scans; returns (checkpoint, scans)."""
    for i in range(scans):
        write_points(folder / "scans" / f"scan_{i:03d}.pcd", ellipsoid(points, 100 + i, bump=0.1 if i % 3 == 0 else 0))
    train = [ellipsoid(points, seed) for seed in range(3)]
    if method == "mvr":
        detector = create_detector("mvr", config=tiny_mvr(), device=device)
    else:
        detector = create_detector(method)
    detector.fit(train, progress=False).save(folder / "model")
    return folder / "model", folder / "scans"


class Clock:
    """Progress callback: when each batch came back, to split start-up from steady scoring."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.batches: list[tuple[float, int]] = []

    def __call__(self, scored, done: int, total: int) -> None:
        self.batches.append((time.perf_counter(), len(scored.results)))

    def summary(self) -> dict:
        wall = time.perf_counter() - self.started
        first, _ = self.batches[0]
        rest = sum(n for _, n in self.batches[1:])
        steady = (self.batches[-1][0] - first) / rest if rest else float("nan")
        return {"wall": wall, "startup": first - self.started, "steady": steady}


def plain(checkpoint: Path, scans: Path, out: Path, device: str, batch: int, one_thread: bool) -> dict:
    started = time.perf_counter()
    limits = threadpool_limits(limits=1) if one_thread else nullcontext()
    threads = torch.get_num_threads()
    with limits:
        torch.set_num_threads(1 if one_thread else threads)
        detector = load_detector(checkpoint, device=device)
        loaded = time.perf_counter()
        predict_files(detector, scans, out, batch=batch, checkpoint=checkpoint, threshold=detector.threshold_)
        torch.set_num_threads(threads)
    wall = time.perf_counter() - started
    return {"wall": wall, "startup": loaded - started, "steady": (wall - (loaded - started)) / len(read_scores(out))}


def scaled(checkpoint: Path, scans: Path, out: Path, batches_of, batch: int) -> dict:
    clock = Clock()
    detector = load_detector(checkpoint, device="cpu")
    spec = WorkerSpec(checkpoint, threads=1)
    predict_scaled(detector, spec, scans, out, batches_of(spec), batch=batch, threshold=detector.threshold_,
                   progress=clock)
    return clock.summary()


def same_scores(out: Path, reference: Path) -> bool:
    mine, theirs = read_scores(out), read_scores(reference)
    if [r.file for r in mine] != [r.file for r in theirs]:
        return False
    if [r.object_score for r in mine] != [r.object_score for r in theirs]:
        return False
    return all((out / f"{r.file}.txt").read_bytes() == (reference / f"{r.file}.txt").read_bytes() for r in mine)


def run(args: argparse.Namespace, method: str, work: Path) -> list[list[str]]:
    """The rows of one method: plain predict, then --devices and --ray on the same scans."""
    if args.checkpoint is None:
        checkpoint, scans = synthetic(work, method, args.scans, args.points, args.device)
    else:
        checkpoint, scans = args.checkpoint, args.input
    cpu = args.device == "cpu"
    devices = args.devices.split(",")
    # (name, workers, timing, output). Plain with all threads: what a user runs today; with
    # one thread, on a CPU, the reference the scaled-out scores must equal bit for bit.
    runs = [("plain predict", 1, plain(checkpoint, scans, work / "plain", args.device, args.batch, False),
             work / "plain")]
    if cpu:
        runs.append(("plain predict, 1 thread", 1, plain(checkpoint, scans, work / "plain1", "cpu", args.batch, True),
                     work / "plain1"))
    reference = runs[-1][3]
    runs.append((f"--devices {args.devices}", len(devices), scaled(
        checkpoint, scans, work / "devices", lambda spec: device_batches(spec, devices), args.batch), work / "devices"))
    if not args.no_ray:
        runs.append((f"--ray, {args.ray_workers} workers", args.ray_workers,
                     ray_run(args, checkpoint, scans, work / "ray"), work / "ray"))
    count = len(read_scores(reference))
    base = next(timing for _, _, timing, out in runs if out == reference)
    rows = []
    for name, workers, timing, out in runs:
        equal = same_scores(out, reference)
        if cpu and out != work / "plain":  # GPU kernels need not be bit-reproducible across processes
            assert equal, f"{name}: scores differ from {reference.name}"
        extra = (timing["wall"] - base["wall"]) / count
        rows.append([method, name, f"{timing['wall']:.1f}", f"{timing['startup']:.1f}",
                     f"{timing['steady'] * 1000:.0f}", f"{timing['steady'] * workers * 1000:.0f}",
                     "-" if out == reference else f"{extra * 1000:+.0f}", "yes" if equal else "no"])
    return rows


def ray_run(args: argparse.Namespace, checkpoint: Path, scans: Path, out: Path) -> dict:
    """A local cluster started here, its start counted in the run's start-up."""
    ray = require_ray()
    started = time.perf_counter()
    ray.init(num_cpus=args.ray_cpus, include_dashboard=False, logging_level=logging.WARNING)
    cluster = time.perf_counter() - started
    try:
        timing = scaled(checkpoint, scans, out, lambda spec: ray_batches(spec, None, args.ray_workers, args.device),
                        args.batch)
    finally:
        ray.shutdown()
    return {**timing, "wall": timing["wall"] + cluster, "startup": timing["startup"] + cluster}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="plain predict's device; Ray workers take GPUs with cuda")
    parser.add_argument("--devices", default="cpu,cpu", help="the --devices run's list")
    parser.add_argument("--ray-workers", type=int, default=2)
    parser.add_argument("--no-ray", action="store_true", help="leave out the Ray run (where ray is not installed)")
    parser.add_argument("--ray-cpus", type=int, help="CPUs of the local Ray cluster (default: all)")
    parser.add_argument("--method", nargs="+", default=["btf_raw"], help="methods fitted on the synthetic part")
    parser.add_argument("--scans", type=int, default=48)
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--checkpoint", type=Path, help="a fitted detector instead of the synthetic one")
    parser.add_argument("--input", type=Path, help="its scans (with --checkpoint)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--append", action="store_true", help="add the table to the file instead of replacing it")
    args = parser.parse_args()
    if (args.checkpoint is None) != (args.input is None):
        parser.error("--checkpoint and --input go together")
    load = os.getloadavg()[0]
    rows = []
    for method in args.method if args.checkpoint is None else ["(checkpoint)"]:
        with tempfile.TemporaryDirectory() as work:
            rows += run(args, method, Path(work))
    what = (f"{args.scans} synthetic scans of {args.points:,} points" if args.checkpoint is None
            else f"{args.input}, {args.checkpoint}")
    text = (f"Scale-out on {machine(args.device)} ({time.strftime('%Y-%m-%d')}): {what}, {args.batch} scans a "
            "batch. Start-up: until the first batch is back (starting the Ray cluster, the workers, loading the "
            "detector); steady: wall time per scan after that, all workers together; per worker: steady x workers, "
            "what one worker spends on a scan (plain predict's steady time is the cost without scale-out); "
            "overhead: (wall - the reference's wall) / scans, start-up included, negative when faster; the reference "
            "is plain predict (on the CPU with 1 thread: the same kernels as each worker). Same scores: object scores and "
            "point files bit for bit equal to plain predict's (on the CPU its 1-thread run).\n\n")
    text += f"Load average when it started: {load:.1f} (other jobs shared the machine).\n\n" if load > 0.5 else ""
    text += markdown_table(["method", "run", "wall s", "start-up s", "steady ms/scan", "per worker ms/scan",
                            "overhead ms/scan", "same scores"], rows,
                           align=["---", "---", "---:", "---:", "---:", "---:", "---:", "---"])
    print(text)
    name = f"scaleout_{args.device.split(':')[0]}.md"
    path = args.out or Path(__file__).with_name(name)
    if args.append and path.exists():
        text = path.read_text() + "\n" + text
    atomic_write_text(path, text)


if __name__ == "__main__":
    main()
