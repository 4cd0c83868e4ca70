"""Where the accelerator waits during the template method's scoring, function by function.

A synchronised stage timer (``template_profile.py``) says how long each stage takes, not
why: a stage can be slow because its kernels are slow or because the GPU sits idle while
the host prepares the next kernel, copies results back or waits on a sync. Here one
``score_many`` call of all test scans of a class runs under ``torch.profiler`` with a
label on each function below (no syncs added); from the trace, every stretch of time is
given to the innermost labelled function the main thread was in, and per function this
reports its own host time, the GPU idle time within it, the time spent in synchronising
runtime calls and the kernels it launched (all per scan). The profiler's own overhead
lengthens host time, so compare rows with each other, not with unprofiled wall times.

  usage: python benchmarks/template_timeline.py --data ROOT --out FILE.md [--classes ...]
         [--trace DIR]  (keeps each class's gzipped Chrome trace)
"""

from __future__ import annotations

import bisect
import functools
import gzip
import importlib
import json
import tempfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch

from common import class_run_parser, machine, markdown_table, sync
from mvr3d.data.real3d import Real3DAD, list_categories
from mvr3d.models.registry import create_detector
from mvr3d.utils.atomic import atomic_write_text

LABELLED = [
    "mvr3d.baselines.template:TemplateDetector.score_many",
    "mvr3d.baselines.template:TemplateDetector.point_deviations",
    "mvr3d.baselines.template:host_map",
    "mvr3d.baselines.template:smoothed_offset",
    "mvr3d.baselines.template:smoothed_offsets",
    "mvr3d.baselines.template:robust_standardise",
    "mvr3d.geometry.aligner:TemplateAligner.pose_many",
    "mvr3d.geometry.aligner:TemplateAligner._coarse_search",
    "mvr3d.geometry.aligner:TemplateAligner._refine",
    "mvr3d.geometry.aligner:host_map",
    "mvr3d.geometry.aligner:pad_stack",
    "mvr3d.geometry.aligner:cloud_means",
    "mvr3d.geometry.aligner:voxel_downsample_joined",
    "mvr3d.geometry.aligner:_padded_rows",
    "mvr3d.baselines.template:join_clouds",
    "mvr3d.baselines.template:move_clouds",
    "mvr3d.geometry.aligner:icp_batch",
    "mvr3d.geometry.surface:SurfaceReference.signed_distance",
    "mvr3d.geometry.surface:neighbourhood_offset",
    "mvr3d.geometry.surface:_neighbourhoods",
    "mvr3d.geometry.surface:_blend_anchors",
    "mvr3d.geometry.icp:_trim_mask",
    "mvr3d.geometry.icp:plane_step",
    "mvr3d.geometry.neighbours:NeighbourIndex.__init__",
    "mvr3d.geometry.neighbours:NeighbourIndex._from_grid",
    "mvr3d.geometry.neighbours:NeighbourIndex._brute_force",
    "mvr3d.geometry.neighbours:CellGrid.__init__",
    "mvr3d.geometry.neighbours:CellGrid._pieces",
    "mvr3d.geometry.neighbours:CellGrid._rank",
    "mvr3d.geometry.neighbours:_median_spacing",
    "mvr3d.geometry.field:ClosestPointField.query",
]
BUSY = {"kernel", "gpu_memcpy", "gpu_memset"}
SYNCS = ("Synchronize", "cudaMemcpy")  # runtime calls that wait for the device (D2H copies included)


def _labelled(name: str, function: Callable) -> Callable:
    @functools.wraps(function)
    def labelled(*args: object, **kwargs: object) -> object:
        with torch.profiler.record_function(name):
            return function(*args, **kwargs)
    return labelled


class Labels:
    """Wraps each function of ``LABELLED`` that exists in this code version in a profiler label."""

    def __enter__(self) -> Labels:
        self._saved = []
        for spec in LABELLED:
            module_name, path = spec.split(":")
            owner = importlib.import_module(module_name)
            *parents, attribute = path.split(".")
            for parent in parents:
                owner = getattr(owner, parent)
            if not hasattr(owner, attribute):
                continue
            original = owner.__dict__[attribute] if isinstance(owner, type) else getattr(owner, attribute)
            if isinstance(original, staticmethod):
                continue
            self._saved.append((owner, attribute, original))
            setattr(owner, attribute, _labelled(path, original))
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, attribute, original in reversed(self._saved):
            setattr(owner, attribute, original)


def _merge(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[list[float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def _innermost(labels: list[dict]) -> list[tuple[float, float, str]]:
    """The main thread's timeline as (start, end, innermost label) pieces; labels of one
    thread nest, so one sweep with a stack finds them."""
    pieces: list[tuple[float, float, str]] = []
    stack: list[dict] = []
    cursor = 0.0
    for event in sorted(labels, key=lambda e: (e["ts"], -e["dur"])):
        while stack and stack[-1]["ts"] + stack[-1]["dur"] <= event["ts"]:
            top = stack.pop()
            pieces.append((cursor, top["ts"] + top["dur"], top["name"]))
            cursor = top["ts"] + top["dur"]
        if stack:
            pieces.append((cursor, event["ts"], stack[-1]["name"]))
        stack.append(event)
        cursor = event["ts"]
    while stack:
        top = stack.pop()
        pieces.append((cursor, top["ts"] + top["dur"], top["name"]))
        cursor = top["ts"] + top["dur"]
    return [piece for piece in pieces if piece[1] > piece[0]]


def _overlap(pieces: list[tuple[float, float, str]], intervals: list[tuple[float, float]]) -> dict[str, float]:
    """Microseconds of ``intervals`` falling in each piece's label."""
    out: dict[str, float] = defaultdict(float)
    j = 0
    for start, end, name in pieces:
        while j < len(intervals) and intervals[j][1] <= start:
            j += 1
        k = j
        while k < len(intervals) and intervals[k][0] < end:
            out[name] += min(end, intervals[k][1]) - max(start, intervals[k][0])
            k += 1
    return out


def analyse(trace: dict, scans: int) -> tuple[list[list[str]], dict[str, float]]:
    events = [e for e in trace["traceEvents"] if e.get("ph") == "X"]
    root = max((e for e in events if e.get("name") == "TemplateDetector.score_many"), key=lambda e: e["dur"])
    begin, end = root["ts"], root["ts"] + root["dur"]
    main = [e for e in events if e.get("cat") == "user_annotation" and e["tid"] == root["tid"]
            and begin <= e["ts"] and e["ts"] + e["dur"] <= end]
    busy = _merge([(e["ts"], e["ts"] + e["dur"]) for e in events if e.get("cat") in BUSY
                   and e["ts"] < end and e["ts"] + e["dur"] > begin])
    idle, cursor = [], begin
    for start, stop in busy:
        if start > cursor:
            idle.append((cursor, min(start, end)))
        cursor = max(cursor, stop)
    if cursor < end:
        idle.append((cursor, end))
    runtime = [e for e in events if e.get("cat") == "cuda_runtime" and e["tid"] == root["tid"] and begin <= e["ts"] < end]
    waits = _merge([(e["ts"], e["ts"] + e["dur"]) for e in runtime if any(s in e["name"] for s in SYNCS)])
    pieces = _innermost(main)
    own = _overlap(pieces, [(begin, end)])
    idle_in, wait_in = _overlap(pieces, idle), _overlap(pieces, waits)
    launches: dict[str, int] = defaultdict(int)
    starts = [piece[0] for piece in pieces]
    for event in runtime:
        if "Launch" in event["name"]:
            at = bisect.bisect_right(starts, event["ts"]) - 1
            launches[pieces[at][2] if at >= 0 and event["ts"] < pieces[at][1] else "(unlabelled)"] += 1
    rows = [[name, f"{own[name] / 1e3 / scans:.2f}", f"{idle_in.get(name, 0) / 1e3 / scans:.2f}",
             f"{wait_in.get(name, 0) / 1e3 / scans:.2f}", f"{launches.get(name, 0) / scans:.0f}"]
            for name in sorted(own, key=own.get, reverse=True)]
    busy_total = sum(min(b, end) - max(a, begin) for a, b in busy)
    totals = {"wall_ms": (end - begin) / 1e3 / scans, "gpu_busy_ms": busy_total / 1e3 / scans,
              "gpu_idle_ms": sum(b - a for a, b in idle) / 1e3 / scans, "sync_wait_ms": sum(b - a for a, b in waits) / 1e3 / scans,
              "launches": sum(1 for e in runtime if "Launch" in e["name"]) / scans}
    return rows, totals


def profile_class(root: Path, category: str, device: str, keep: Path | None, most: int | None = None) -> str:
    train, test = Real3DAD(root, category, "train"), Real3DAD(root, category, "test")
    detector = create_detector("template", device=device).fit([s.points for s in train], progress=False)
    clouds = [test[i].points for i in range(min(len(test), most or len(test)))]
    detector.score_many(clouds)  # warm-up
    sync(device)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.startswith("cuda"):
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with Labels(), torch.profiler.profile(activities=activities) as prof:
        detector.score_many(clouds)
        sync(device)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "trace.json"
        prof.export_chrome_trace(str(path))
        raw = path.read_bytes()
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        (keep / f"{category}.json.gz").write_bytes(gzip.compress(raw))
    rows, totals = analyse(json.loads(raw), len(clouds))
    head = (f"### {category}: {len(clouds)} scans in one call; per scan: wall {totals['wall_ms']:.1f} ms, GPU busy "
            f"{totals['gpu_busy_ms']:.1f}, GPU idle {totals['gpu_idle_ms']:.1f}, in synchronising calls "
            f"{totals['sync_wait_ms']:.1f}, {totals['launches']:.0f} kernel launches\n\n")
    columns = ["innermost labelled function", "own host ms/scan", "GPU idle ms/scan", "sync wait ms/scan", "launches/scan"]
    return head + markdown_table(columns, rows)


def main() -> None:
    parser = class_run_parser(__doc__)
    parser.add_argument("--scans", type=int, help="only the first SCANS test scans of each class")
    parser.add_argument("--trace", type=Path, help="folder for each class's gzipped Chrome trace")
    args = parser.parse_args()
    torch.manual_seed(0)
    parts = [f"Template scoring timeline on {machine(args.device)} (torch.profiler; host times include its overhead).\n"]
    for category in args.classes or list_categories(args.data):
        parts.append(profile_class(args.data, category, args.device, args.trace, args.scans))
        print(parts[-1], flush=True)
    atomic_write_text(args.out, "\n".join(parts))


if __name__ == "__main__":
    main()
