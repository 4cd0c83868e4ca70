"""End-to-end speed: training time and inference objects/s, with the compute floor.

    python benchmarks/throughput.py --device cuda
    python benchmarks/throughput.py --device cpu --backbones dinov2_vits14 --views 9 --iterations 20
    python benchmarks/throughput.py --method template --data runs/data_s1 --device cuda

MVR: random backbone weights (speed does not depend on them), synthetic scans (noisy samples
of an ellipsoid). Writes ``benchmarks/throughput_<device>.md``.

``--method template`` (the default detector) times the whole path on real benchmark scans
instead: read each test file, register it to the class's templates, score every point. Per
class of a Real3D-AD-layout folder (``--data``): fit on ``train/``, then read + score every
``test/`` scan one after another (a line's order) and with ``score_many`` over all of them.
Writes ``benchmarks/throughput_template_<device>.md``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from common import ellipsoid, machine, markdown_table, sync
from mvr3d.detectors import Detector
from mvr3d.io import read_points
from mvr3d.models import MVRConfig, MVRDetector, Runtime, create_detector
from mvr3d.models.mvr.presets import preset_fields
from mvr3d.render import RenderConfig
from mvr3d.utils.atomic import atomic_write_text

# Teacher (to the last layer read) + 8-block student, per 224-px image, in GFLOP (2 x MAC):
# ViT-S/14 ~ 6 GMAC for 12 blocks; ViT-B ~ 23; ViT-L ~ 79 for 24 blocks.
GFLOP_PER_IMAGE = {"dinov2_vits14": 2 * (6 * 10 / 12 + 6 * 8 / 12), "dinov2_vitb14": 2 * (23 * 10 / 12 + 23 * 8 / 12),
                   "dinov2_vitl14": 2 * (79 * 19 / 24 + 79 * 8 / 24)}
PEAK_TFLOPS = {"H100": 990.0, "H200": 990.0}


def scan(n: int, seed: int) -> np.ndarray:
    """The synthetic part with noise 0.05 and no bump."""
    return ellipsoid(n, seed, noise=0.05)


def peak_tflops(device: str) -> float | None:
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(0)
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def profile(detector: Detector, tests: list[np.ndarray], device: str) -> None:
    """Where one score_many call spends its time, per operator (host and device)."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.startswith("cuda"):
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        detector.score_many(tests)
        sync(device)
    sort = "cuda_time_total" if device.startswith("cuda") else "cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=25), flush=True)


def run(
    backbone: str, device: str, views: int, iterations: int, points: int, batches: list[int], align: bool,
    show_profile: bool = False, compile: bool = False, deviation_weight: float = 0.0,
) -> list[dict]:
    config = MVRConfig(
        backbone=backbone, weights="random", views=views, iterations=iterations, align=align,
        render=RenderConfig(depth_range="scan"), augment_rotations=2, deviation_weight=deviation_weight,
    )
    runtime = Runtime(device=device, view_batch=views * max(batches), compile=compile)
    templates = [scan(points, s) for s in range(4)]
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    started = time.perf_counter()
    detector = MVRDetector(config, runtime).fit(templates, progress=False)
    sync(device)
    fit_seconds = time.perf_counter() - started
    rows = []
    for batch in batches:
        tests = [scan(points, 100 + i) for i in range(batch)]
        detector.score_many(tests)  # warm-up (and compile)
        if show_profile:
            profile(detector, tests, device)
        sync(device)
        repeats = max(2, 32 // batch) if device.startswith("cuda") else 1
        started = time.perf_counter()
        for _ in range(repeats):
            detector.score_many(tests)
        sync(device)
        seconds = (time.perf_counter() - started) / (repeats * batch)
        floor = GFLOP_PER_IMAGE.get(backbone, float("nan")) * views / 1e3  # TFLOP per object
        peak = peak_tflops(device)
        rows.append({
            "backbone": backbone, "compile": compile, "align": align, "deviation": deviation_weight, "points": points, "views": views, "batch": batch,
            "fit_s": fit_seconds, "iterations": iterations, "objects_per_s": 1 / seconds,
            "floor_share": (floor / peak) / seconds if peak else None,
            "peak_mem_gb": torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None,
        })
        print(rows[-1], flush=True)
    return rows


def template_stages(detector: object, clouds: list[np.ndarray], device: str) -> dict[str, float]:
    """Mean milliseconds per scan of the template method's three stages, the scans of
    ``clouds`` going through each stage together (as ``score_many`` sends them)."""
    from mvr3d.geometry.surface import anchor_points, smoothed_offsets

    clouds = [cloud.astype(np.float64) for cloud in clouds]
    sync(device)
    started = time.perf_counter()
    poses = detector.aligner_.pose_many(clouds)
    moved = [detector.reference_.from_template(j, c @ r.T + t) for c, (j, r, t) in zip(clouds, poses, strict=True)]
    sync(device)
    middle = time.perf_counter()
    signed, normals, _ = detector.reference_.signed_distance(torch.from_numpy(np.concatenate(moved)))
    sync(device)
    last = time.perf_counter()
    sizes = [len(c) for c in clouds]
    anchors = [anchor_points(cloud, detector.anchor_stride, detector.seed) for cloud in clouds]
    smoothed_offsets(torch.from_numpy(np.concatenate(moved)).to(signed.device).split(sizes), signed.split(sizes),
                     normals.split(sizes), detector.smoothing_k, anchors)
    sync(device)
    end = time.perf_counter()
    return {key: seconds * 1e3 / len(clouds) for key, seconds in
            zip(("register_ms", "distance_ms", "smoothing_ms"), (middle - started, last - middle, end - last), strict=True)}


def score_in_batches(detector: object, clouds: list[np.ndarray], batch: int, device: str) -> tuple[float, float | None]:
    """Seconds to score every cloud, ``batch`` per ``score_many`` call, and the peak GPU
    memory allocated meanwhile (GiB; None off the GPU)."""
    on_gpu = device.startswith("cuda")
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    started = time.perf_counter()
    for start in range(0, len(clouds), batch):
        detector.score_many(clouds[start : start + batch])
    sync(device)
    return time.perf_counter() - started, torch.cuda.max_memory_allocated() / 2**30 if on_gpu else None


def real_detector(method: str, device: str) -> Detector:
    """An unfitted detector for ``--data`` timing: ``template``, or MVR with the template
    reference (``--preset reference``, offline DINOv2 weights)."""
    if method == "template":
        return create_detector("template", device=device)
    return MVRDetector(MVRConfig(**preset_fields("reference")), Runtime(device=device))


def run_template(data: Path, device: str, classes: list[str] | None, batches: list[int],
                 show_profile: bool = False, method: str = "template") -> list[dict]:
    """Fit ``method`` per class and time read + score of every test scan: one by one
    and ``batch`` scans per ``score_many`` call, for each of ``batches``."""
    rows = []
    for folder in sorted(p for p in data.iterdir() if (p / "train").is_dir()):
        if classes and folder.name not in classes:
            continue
        sync(device)
        started = time.perf_counter()
        detector = real_detector(method, device).fit(sorted((folder / "train").iterdir()), progress=False)
        sync(device)
        fit_seconds = time.perf_counter() - started
        files = sorted(p for p in (folder / "test").iterdir() if p.suffix in (".pcd", ".ply", ".npy"))
        started = time.perf_counter()
        points = [read_points(f).points for f in files]
        read_seconds = time.perf_counter() - started
        detector.score_many(points[: max(batches)])  # warm-up: kernels, allocator
        if show_profile:
            profile(detector, points[: max(batches)], device)
        timed = {b: score_in_batches(detector, points, b, device) for b in batches}
        rates = {b: len(files) / (read_seconds + seconds) for b, (seconds, _) in timed.items()}
        peaks = {b: peak for b, (_, peak) in timed.items()}
        best = max(rates, key=rates.get)
        stages = template_stages(detector, points[:best], device) if method == "template" else {}
        rows.append({"class": folder.name, "scans": len(files), "mean_points": float(np.mean([len(p) for p in points])),
                     "fit_s": fit_seconds, "read_s_per_object": read_seconds / len(files), "rates": rates, "peak_gib": peaks,
                     "stage_batch": best, **stages})
        print(rows[-1], flush=True)
    return rows


TITLES = {"template": "Template detector (default)", "mvr-reference": "MVR with the template reference (`--preset reference`)"}


def template_table(rows: list[dict], device: str, data: Path, method: str = "template") -> str:
    batches = sorted(rows[0]["rates"])
    staged = "register_ms" in rows[0]
    lines = [f"{TITLES[method]} on {machine(device)} ({time.strftime('%Y-%m-%d')}), scans of `{data}`; "
             "objects/s = test scans / (reading every file + scoring them, `score_many` over B scans a call)"
             + ("; the stage columns are ms per scan at the fastest B, over its first B scans." if staged else "."), ""]
    stages = ["register ms", "distance ms", "smoothing ms"] if staged else []
    peaks = rows[0].get("peak_gib", {}).get(batches[0]) is not None
    memory = [f"peak GPU GiB, B = {b}" for b in batches] if peaks else []
    columns = ["class", "test scans", "mean points", "fit s", "read ms/object", *[f"objects/s, B = {b}" for b in batches],
               *memory, *stages]
    cells = [[r["class"], str(r["scans"]), f"{r['mean_points']:,.0f}", f"{r['fit_s']:.1f}",
              f"{r['read_s_per_object'] * 1e3:.1f}", *[f"{r['rates'][b]:.2f}" for b in batches],
              *([f"{r['peak_gib'][b]:.1f}" for b in batches] if peaks else []),
              *([f"{r['register_ms']:.0f}", f"{r['distance_ms']:.0f}", f"{r['smoothing_ms']:.0f}"] if staged else [])]
             for r in rows]
    total = sum(r["scans"] for r in rows)
    overall = [f"{total / sum(r['scans'] / r['rates'][b] for r in rows):.2f}" for b in batches]
    cells.append(["all", str(total), "", "", "", *overall, *[""] * (len(memory) + len(stages))])
    return "\n".join(lines) + "\n" + markdown_table(columns, cells)


def table(rows: list[dict], device: str) -> str:
    lines = [
        f"Throughput on {machine(device)} ({time.strftime('%Y-%m-%d')}); random weights; on CUDA training in "
        "bfloat16 and scoring in float16 autocast.",
        "Floor share = (ViT FLOPs per object / bf16 dense peak) / measured time per object.",
        "",
    ]
    columns = ["backbone", "compiled", "align", "deviation weight", "points", "views", "scans per batch",
               "fit (its)", "fit s", "objects/s", "floor share", "peak GPU GB"]
    cells = [
        [
            r["backbone"], str(r["compile"]), str(r["align"]), f"{r.get('deviation', 0.0):g}", f"{r['points']:,}",
            str(r["views"]), str(r["batch"]), str(r["iterations"]), f"{r['fit_s']:.1f}", f"{r['objects_per_s']:.2f}",
            f"{r['floor_share'] * 100:.1f} %" if r["floor_share"] is not None else "-",
            f"{r['peak_mem_gb']:.1f}" if r["peak_mem_gb"] is not None else "-",
        ]
        for r in rows
    ]
    align = ["---"] * 3 + ["---:"] * (len(columns) - 3)
    return "\n".join(lines) + "\n" + markdown_table(columns, cells, align=align)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--backbones", nargs="+", default=["dinov2_vits14", "dinov2_vitb14", "dinov2_vitl14"])
    parser.add_argument("--views", type=int, default=27)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--points", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--align", action="store_true", help="register scans to templates (CPU ICP)")
    parser.add_argument("--deviation-weight", type=float, default=0.0, help="fuse the template deviation (needs --align)")
    parser.add_argument("--profile", action="store_true", help="print a per-operator profile of each batch")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network and image operations")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--method", choices=["mvr", "template", "mvr-reference"], default="mvr",
                        help="mvr: synthetic scans; template, mvr-reference: the scans of --data")
    parser.add_argument("--data", type=Path, help="Real3D-AD-layout folder (--method template)")
    parser.add_argument("--classes", nargs="+", help="only these classes of --data")
    args = parser.parse_args()
    if args.method != "mvr":
        if args.data is None:
            parser.error(f"--method {args.method} needs --data (a benchmark folder)")
        rows = run_template(args.data, args.device, args.classes, args.batches, args.profile, args.method)
        text = template_table(rows, args.device, args.data, args.method)
        print(text)
        name = f"throughput_{args.method.replace('-', '_')}_{args.device.split(':')[0]}.md"
        atomic_write_text(args.out or Path(__file__).with_name(name), text)
        return
    rows = []
    for backbone in args.backbones:
        for points in args.points:
            batches = args.batches if points <= 100_000 else [1]
            rows += run(backbone, args.device, args.views, args.iterations, points, batches, args.align, args.profile,
                        args.compile, args.deviation_weight)
    text = table(rows, args.device)
    print(text)
    atomic_write_text(args.out or Path(__file__).with_name(f"throughput_{args.device.split(':')[0]}.md"), text)


if __name__ == "__main__":
    main()
