"""Load on `mvr3d serve`: requests/s and latency percentiles at several concurrencies.

    python benchmarks/serve_load.py --method btf_raw --points 5000
    python benchmarks/serve_load.py --method template --points 100000 --device cuda

Starts the service in this process (uvicorn on 127.0.0.1, a free port) with a detector fitted
on synthetic templates and calibrated, then sends PCD scans over HTTP from client threads.
Writes ``benchmarks/serve_load_<device>.md``.
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import torch
import uvicorn

from common import ellipsoid, machine, markdown_table
from mvr3d.detectors import create_detector
from mvr3d.io import write_points
from mvr3d.service import create_app
from mvr3d.utils.atomic import atomic_write_text


def pcd_bytes(points: np.ndarray, folder: Path, index: int) -> bytes:
    path = folder / f"scan{index}.pcd"
    write_points(path, points)
    return path.read_bytes()


def start(app: object) -> tuple[uvicorn.Server, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


def load(url: str, bodies: list[bytes], concurrency: int) -> dict:
    latencies: list[float] = []

    def send(body: bytes) -> None:
        started = time.perf_counter()
        reply = httpx.post(f"{url}/inspect", params={"filename": "scan.pcd"}, content=body, timeout=600)
        reply.raise_for_status()
        latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(send, bodies))
    seconds = time.perf_counter() - started
    return {"concurrency": concurrency, "requests": len(bodies), "requests_per_s": len(bodies) / seconds,
            "p50_ms": 1e3 * float(np.percentile(latencies, 50)), "p99_ms": 1e3 * float(np.percentile(latencies, 99))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="btf_raw")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--points", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    kwargs = {"seed": 0}
    if args.method in ("template", "registration"):
        kwargs["device"] = args.device
    templates = [ellipsoid(args.points, seed, noise=0.05) for seed in range(4)]
    detector = create_detector(args.method, **kwargs).fit(templates, progress=False)
    detector.calibrate(templates, 0.01)
    server, url = start(create_app(detector))
    with tempfile.TemporaryDirectory() as scratch:
        bodies = [pcd_bytes(ellipsoid(args.points, 100 + i, noise=0.05), Path(scratch), i)
                  for i in range(args.requests)]
        load(url, bodies[:2], 1)  # warm-up
        rows = []
        for concurrency in args.concurrency:
            before = httpx.get(f"{url}/health").json()
            row = load(url, bodies, concurrency)
            after = httpx.get(f"{url}/health").json()
            row["scans_per_batch"] = (after["scans"] - before["scans"]) / max(1, after["batches"] - before["batches"])
            rows.append(row)
    server.should_exit = True
    header = (f"`mvr3d serve` load on {machine(args.device)} ({time.strftime('%Y-%m-%d')}): method {args.method}, "
              f"synthetic scans of {args.points:,} points sent as PCD over HTTP on 127.0.0.1, {args.requests} "
              "requests per row; latency is request to JSON answer.\n\n")
    cells = [[str(r["concurrency"]), str(r["requests"]), f"{r['requests_per_s']:.2f}", f"{r['p50_ms']:.0f}",
              f"{r['p99_ms']:.0f}", f"{r['scans_per_batch']:.1f}"] for r in rows]
    columns = ["concurrent clients", "requests", "requests/s", "p50 ms", "p99 ms", "scans per batch"]
    text = header + markdown_table(columns, cells)
    print(text)
    name = f"serve_load_{args.method}_{args.device.split(':')[0]}.md"
    atomic_write_text(args.out or Path(__file__).with_name(name), text)


if __name__ == "__main__":
    main()
