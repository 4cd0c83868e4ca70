"""Scores of every method on a fixed tiny scene, pinned before the structure refactor.

Refactors must not change what a detector computes. The pins in ``pinned_scores.json``
were written at commit 278e5fe with ``python tests/test_pinned_scores.py --write``; rewrite
them only for a change that is meant to alter results, and say so in the commit.
``template`` was rewritten once, when its point smoothing was added (``smoothing_k``);
``template_unsmoothed`` keeps the original pins of the method with smoothing off. It was
rewritten again when the noise floor of its standardisation was added (``noise_floor``);
``template_unfloored`` keeps the pins from before. And again when its location calibration
was added (``location_scans``); ``template_uncalibrated`` keeps the pins from before. And
again when that calibration's simulated scans were cut from each template moved onto its
local planes (``location_denoise``); ``template_raw_location`` keeps the pins from before. And
again when points past the fused reference's open edges stopped feeding the smoothing and the
object score (``edge_reach``); ``template_all_points`` keeps the pins from before. And again
when deviations were put in units of the scan's noise measured about each point's local mean
and the location calibration was turned off by default (``scan_noise``, ``location_scans``);
``template_spread_noise`` keeps the pins from before. And again when each scan's noise was
measured on the reference's planes and the templates' noise joined it (``scan_noise`` "planes");
``template_local_noise`` keeps the pins from before.

Tolerance: MVR runs float32 convolutions and attention whose summation order differs
between CPU kernels (AVX2 / AVX-512), so its scores agree to ~1e-6 relative across machines,
not bit for bit; rtol 1e-3 leaves room for that and still catches any real change (a
different pose, neighbour or normalisation moves these summaries by far more).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from mvr3d.engine.benchmark import make_detector
from mvr3d.models import MVRConfig
from mvr3d.render import RenderConfig

PINS = Path(__file__).with_name("pinned_scores.json")
METHODS = ("mvr", "btf_raw", "btf_fpfh", "patchcore_fpfh", "registration", "template", "template_unsmoothed",
           "template_unfloored", "template_uncalibrated", "template_raw_location", "template_all_points",
           "template_spread_noise", "template_local_noise")
# Pinned name -> (registered method, parameters set after construction).
# Each keeps the pins of its time, so it also sets what came after as it was then (edge_reach,
# scan_noise, location_scans).
BEFORE_NOISE = {"scan_noise": "spread"}
VARIANTS = {"template_unsmoothed": ("template", {"smoothing_k": 0, "noise_floor": False, "location_scans": 0,
                                                 "edge_reach": 0.0, **BEFORE_NOISE}),
            "template_unfloored": ("template", {"noise_floor": False, "location_scans": 0, "edge_reach": 0.0,
                                               **BEFORE_NOISE}),
            "template_uncalibrated": ("template", {"location_scans": 0, "edge_reach": 0.0, **BEFORE_NOISE}),
            "template_raw_location": ("template", {"location_scans": 16, "location_denoise": 0, "edge_reach": 0.0,
                                                   **BEFORE_NOISE}),
            "template_all_points": ("template", {"location_scans": 16, "edge_reach": 0.0, **BEFORE_NOISE}),
            "template_spread_noise": ("template", {"location_scans": 16, **BEFORE_NOISE}),
            "template_local_noise": ("template", {"scan_noise": "local"})}


def blob(n: int, seed: int) -> np.ndarray:
    """A star-shaped blob without symmetries, lightly noisy, in a random pose-free frame."""
    rng = np.random.default_rng(seed)
    unit = rng.normal(size=(n, 3))
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    radius = 1 + 0.2 * np.sin(3 * unit[:, 0]) * np.cos(2 * unit[:, 1]) + 0.1 * unit[:, 2] ** 2
    return 10 * unit * radius[:, None] + rng.normal(scale=0.02, size=(n, 3))


def bulged(points: np.ndarray) -> np.ndarray:
    unit = points / np.linalg.norm(points, axis=1, keepdims=True)
    lift = np.clip((unit[:, 2] - 0.85) / 0.15, 0, 1) ** 2
    return points + 1.5 * lift[:, None] * unit


def tiny_config() -> MVRConfig:
    return MVRConfig(
        backbone="tiny_test", weights="random", render=RenderConfig(render_size=112, image_size=56, depth_range="scan"),
        views=3, augment_rotations=1, augment_degrees=20.0, iterations=3, batch_size=4, warmup=1,
        map_blur_sigma=1.0, train_directions=4, side_candidates=16, calibration_scans=2, seed=0,
    )


def summaries(method: str) -> dict[str, list[float]]:
    method, params = VARIANTS.get(method, (method, {}))
    detector = make_detector(method, tiny_config())
    for name, value in params.items():
        setattr(detector, name, value)
    detector.fit([blob(2500, s) for s in range(3)], progress=False)
    out = {}
    for name, scan in (("good", blob(2000, 10)), ("bulged", bulged(blob(2000, 11)))):
        result = detector.score(scan)
        points = np.asarray(result.point_scores, dtype=np.float64)
        out[name] = [float(result.object_score), float(points.mean()), float(points.std()),
                     float(np.quantile(points, 0.99)), *map(float, points[:4])]
    return out


@pytest.mark.parametrize("method", METHODS)
def test_scores_match_the_pins(method: str) -> None:
    pinned = json.loads(PINS.read_text())[method]
    got = summaries(method)
    for name in ("good", "bulged"):
        np.testing.assert_allclose(got[name], pinned[name], rtol=1e-3, atol=1e-5, err_msg=f"{method} {name}")


if __name__ == "__main__" and "--write" in sys.argv:
    chosen = [m for m in METHODS if m in sys.argv[1:]] or list(METHODS)
    pins = json.loads(PINS.read_text()) if PINS.exists() else {}
    PINS.write_text(json.dumps({**pins, **{m: summaries(m) for m in chosen}}, indent=1) + "\n")
    print(f"wrote {chosen} to {PINS}")
