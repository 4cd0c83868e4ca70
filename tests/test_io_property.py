"""Property tests: exact round trips, and malformed bytes only ever raise InputError."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mvr3d.errors import InputError
from mvr3d.io import WRITE_FORMATS, PointCloud, read_points, write_points
from mvr3d.io.pcd import write_pcd
from mvr3d.io.ply import write_ply

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
clouds = st.integers(2, 500).flatmap(lambda n: arrays(np.float32, (n, 3), elements=finite32))


def _values(points: np.ndarray, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=len(points)).astype(np.float32)


@SETTINGS
@given(
    points=clouds,
    suffix=st.sampled_from(WRITE_FORMATS),
    with_values=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_round_trip_is_exact(points, suffix, with_values, seed):
    values = _values(points, seed) if with_values else None
    with tempfile.TemporaryDirectory() as tmp:
        cloud = read_points(write_points(Path(tmp) / f"c{suffix}", points, values))
    # Text is parsed as float64; %.9g makes the float32 round trip exact.
    np.testing.assert_array_equal(cloud.points.astype(np.float32), points)
    if with_values:
        np.testing.assert_array_equal(cloud.values.astype(np.float32), values)


@SETTINGS
@given(
    points=clouds,
    kind=st.sampled_from(["pcd:ascii", "pcd:binary_compressed", "ply:ascii",
                          "ply:binary_big_endian"]),
)  # fmt: skip
def test_round_trip_other_encodings(points, kind):
    fmt, data = kind.split(":")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"c.{fmt}"
        if fmt == "pcd":
            write_pcd(path, points, data=data)
        else:
            write_ply(path, points, fmt=data)
        cloud = read_points(path)
    np.testing.assert_array_equal(cloud.points, points)


def _valid_file(suffix: str, data: str) -> bytes:
    points = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    values = np.arange(6, dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"seed{suffix}"
        if suffix == ".pcd":
            write_pcd(path, points, values, data=data)
        else:
            write_ply(path, points, values, faces=np.array([[0, 1, 2], [3, 4, 5]]), fmt=data)
        return path.read_bytes()


SEEDS = {(".pcd", d): _valid_file(".pcd", d) for d in ("ascii", "binary", "binary_compressed")} | {
    (".ply", d): _valid_file(".ply", d)
    for d in ("ascii", "binary_little_endian", "binary_big_endian")
}


def _read_or_input_error(suffix: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"fuzz{suffix}"
        path.write_bytes(data)
        try:
            cloud = read_points(path)
        except InputError as exc:
            assert path.name in str(exc)
            return
    assert isinstance(cloud, PointCloud)
    assert cloud.points.ndim == 2 and cloud.points.shape[1] == 3


@SETTINGS
@given(suffix=st.sampled_from([".pcd", ".ply", ".xyz", ".csv", ".npy", ".npz"]),
       data=st.binary(max_size=400))  # fmt: skip
def test_random_bytes(suffix, data):
    _read_or_input_error(suffix, data)


@st.composite
def mutated(draw):
    key = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[key])
    header_end = data.index(b"DATA") + 20 if key[0] == ".pcd" else data.index(b"end_header")
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "digit", "cut", "insert", "word"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if draw(st.booleans()):  # bias mutations towards the header
            at = at % max(header_end, 1)
        if op == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "digit":
            data[at:at] = str(draw(st.sampled_from([0, 1, 9, 99, 10**12, -1]))).encode()
        elif op == "cut":
            del data[at : at + draw(st.integers(1, 16))]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            word = draw(st.sampled_from([b"list uchar int ", b"COUNT 3 ", b"F ", b"8 ", b"\n",
                                         b"element face 2\n", b"float ", b"label "]))  # fmt: skip
            data[at:at] = word
    return key[0], bytes(data)


@SETTINGS
@given(case=mutated())
def test_mutated_headers(case):
    suffix, data = case
    _read_or_input_error(suffix, data)
