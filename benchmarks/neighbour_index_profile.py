"""Where the grouped neighbour searches of the template method's density pass spend their time.

Synthetic scans (half ellipsoids, ``--points`` each, ``--scans`` of them end to end, as one
``score_many`` batch joins them) go through each step of
:func:`~mvr3d.geometry.density.anchored_areas` with a synchronised timer: building the grouped
index (its median spacing and first cell grid), the grid sized for 16 neighbours, the 16
nearest points of every anchor, the anchors' index and every point's nearest anchor. Then the
whole of ``local_areas`` (every point measured) and ``anchored_areas`` once each, and the
heaviest device operators of one ``anchored_areas`` call (torch profiler).

    python benchmarks/neighbour_index_profile.py --device cuda --out benchmarks/neighbour_index_profile_cuda.md
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from common import ellipsoid, machine, markdown_table, sync
from mvr3d.geometry import neighbours
from mvr3d.geometry.density import DENSITY_NEIGHBOURS, anchored_areas, local_areas
from mvr3d.geometry.joined import cloud_numbers
from mvr3d.geometry.surface import anchor_points
from mvr3d.utils.atomic import atomic_write_text


def scans(count: int, points: int, device: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Upper halves of noise-free ellipsoids (one seed each) and their radial normals."""
    clouds = []
    for seed in range(count):
        cloud = ellipsoid(2 * points + 4096, seed, noise=0.0).astype(np.float64)
        clouds.append(cloud[cloud[:, 2] > 0][:points])
    normals = [cloud / np.linalg.norm(cloud, axis=1, keepdims=True) for cloud in clouds]
    return ([torch.from_numpy(c).to(device) for c in clouds], [torch.from_numpy(n).to(device) for n in normals])


def timed(device: str, step: Callable[[], object]) -> tuple[float, object]:
    sync(device)
    started = time.perf_counter()
    result = step()
    sync(device)
    return time.perf_counter() - started, result


def steps(clouds: list[torch.Tensor], anchors: list[torch.Tensor], device: str) -> list[tuple[str, float]]:
    """Seconds of each step of the anchored density pass, in order."""
    sizes = [len(c) for c in clouds]
    joined = torch.cat(clouds)
    out = []
    seconds, index = timed(device, lambda: neighbours.NeighbourIndex(joined, grid=True, sizes=sizes))
    out.append(("grouped index of all points (median spacing + first grid)", seconds))
    seconds, _ = timed(device, lambda: neighbours._median_spacing(joined, cloud_numbers(sizes, joined.device)))
    out.append(("  of which: median spacing (measured again alone)", seconds))
    if index._grids:
        seconds, _ = timed(device, lambda: index._sized_grid(DENSITY_NEIGHBOURS))
        out.append((f"grid sized for {DENSITY_NEIGHBOURS} neighbours", seconds))
    starts = np.cumsum([0, *sizes[:-1]]).tolist()
    centres = torch.cat([a.to(joined.device) + s for a, s in zip(anchors, starts, strict=True)])
    groups = cloud_numbers([len(a) for a in anchors], joined.device)
    seconds, _ = timed(device, lambda: index.query(joined[centres], DENSITY_NEIGHBOURS, groups=groups))
    out.append((f"{DENSITY_NEIGHBOURS} nearest points of every anchor", seconds))
    picked = torch.cat([c[a.to(c.device)] for c, a in zip(clouds, anchors, strict=True)])
    seconds, anchor_index = timed(device, lambda: neighbours.NeighbourIndex(picked, grid=True, sizes=[len(a) for a in anchors]))
    out.append(("grouped index of the anchors", seconds))
    seconds, _ = timed(device, lambda: anchor_index.query(joined, 1, groups=cloud_numbers(sizes, joined.device)))
    out.append(("nearest anchor of every point", seconds))
    return out


def operators(clouds: list[torch.Tensor], normals: list[torch.Tensor], anchors: list[torch.Tensor], device: str) -> str:
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.startswith("cuda"):
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profile:
        anchored_areas(clouds, normals, anchors)
        sync(device)
    key = "cuda_time_total" if device.startswith("cuda") else "cpu_time_total"
    return profile.key_averages().table(sort_by=key, row_limit=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--scans", type=int, default=40)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--stride", type=int, default=16, help="anchor stride (the template default)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    clouds, normals = scans(args.scans, args.points, args.device)
    anchors = [anchor_points(c.cpu().numpy(), args.stride) for c in clouds]
    anchored_areas(clouds, normals, anchors)  # warm-up: kernels and allocator
    rows = [(name, seconds) for name, seconds in steps(clouds, anchors, args.device)]
    rows.append(("whole local_areas (every point measured)", timed(args.device, lambda: local_areas(clouds, normals))[0]))
    rows.append(("whole anchored_areas", timed(args.device, lambda: anchored_areas(clouds, normals, anchors))[0]))
    table = markdown_table(["step", "ms per scan"], [[name, f"{1e3 * s / args.scans:.2f}"] for name, s in rows],
                           align=["---", "---:"])
    text = (f"Density pass steps on {machine(args.device)}: {args.scans} synthetic scans of {args.points:,} points "
            f"joined, anchors one in {args.stride}.\n\n{table}\n\n```\n{operators(clouds, normals, anchors, args.device)}\n```\n")
    print(text)
    atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
