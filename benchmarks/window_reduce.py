"""Window reductions of the renderer: separable doubling (used) against two 1-D max-pools.

    python benchmarks/window_reduce.py            # on CUDA if present

432 images of 672 x 672 (16 scans x 27 views). Writes ``benchmarks/window_reduce_<device>.md``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from mvr3d.render.zbuffer import _window_reduce
from mvr3d.utils.atomic import atomic_write_text


def pooled(x: torch.Tensor, radius: int, op) -> torch.Tensor:
    """The same reduction by max_pool2d (padding -inf); booleans as float16."""
    flip = op is not torch.logical_or
    values = x.half() if x.dtype == torch.bool else x
    values = values.neg() if flip else values
    kernel = 2 * radius + 1
    values = F.max_pool2d(values, (kernel, 1), stride=1, padding=(radius, 0))
    values = F.max_pool2d(values, (1, kernel), stride=1, padding=(0, radius))
    values = values.neg_() if flip else values
    return values > 0 if x.dtype == torch.bool else values


def timed(fn, device: str, *args: object) -> float:
    fn(*args)
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(5):
        fn(*args)
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / 5 * 1e3


def main() -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    images = 432 if device == "cuda" else 27
    depth = torch.rand(images, 1, 672, 672, device=device)
    depth[depth > 0.7] = math.inf
    mask = depth < 0.2
    lines = [f"Window reductions on {torch.cuda.get_device_name(0) if device == 'cuda' else 'CPU'}, "
             f"{images} images of 672 x 672; ms per call (mean of 5).", "",
             "| radius | op | doubling (used) | two max-pools | identical |", "|---:|---|---:|---:|---|"]
    for radius in (1, 2, 4, 8):
        for name, x, op, identity in (("min", depth, torch.minimum, math.inf), ("or", mask, torch.logical_or, False)):
            same = torch.equal(_window_reduce(x, radius, op, identity), pooled(x, radius, op))
            a = timed(_window_reduce, device, x, radius, op, identity)
            b = timed(pooled, device, x, radius, op)
            lines.append(f"| {radius} | {name} | {a:.2f} | {b:.2f} | {same} |")
    text = "\n".join(lines) + "\n"
    print(text)
    atomic_write_text(Path(__file__).with_name(f"window_reduce_{device}.md"), text)


if __name__ == "__main__":
    main()
