"""Round trips and layout variations for every point-cloud format mvr3d.io reads/writes."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import trimesh

from mvr3d.io import (
    READ_FORMATS,
    WRITE_FORMATS,
    PointCloud,
    load_surface,
    lzf,
    read_mesh,
    read_points,
    write_points,
)
from mvr3d.io.pcd import write_pcd
from mvr3d.io.ply import write_ply
from mvr3d.utils.colormap import colormap


@pytest.fixture
def points() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(257, 3)).astype(np.float32)


@pytest.fixture
def scores(points: np.ndarray) -> np.ndarray:
    return np.random.default_rng(1).random(len(points)).astype(np.float32)


def pcd_bytes(fields: list[tuple[str, str, int, int]], n: int, data: str, body: bytes) -> bytes:
    """A PCD file from (name, TYPE, SIZE, COUNT) fields and a ready-made body."""
    header = (
        "VERSION 0.7\n"
        f"FIELDS {' '.join(f[0] for f in fields)}\n"
        f"SIZE {' '.join(str(f[2]) for f in fields)}\n"
        f"TYPE {' '.join(f[1] for f in fields)}\n"
        f"COUNT {' '.join(str(f[3]) for f in fields)}\n"
        f"WIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA {data}\n"
    )
    return header.encode() + body


def _np_type(kind: str, size: int) -> str:
    return f"<{ {'F': 'f', 'I': 'i', 'U': 'u'}[kind] }{size}"


def structured(fields: list[tuple[str, str, int, int]], n: int, rng: np.random.Generator):
    dtype = np.dtype(
        [
            (f"{name}{i}", _np_type(kind, size), (count,))
            if count > 1
            else (f"{name}{i}", _np_type(kind, size))
            for i, (name, kind, size, count) in enumerate(fields)
        ]
    )
    records = np.zeros(n, dtype=dtype)
    for key in dtype.names:
        records[key] = rng.integers(0, 100, size=records[key].shape)
    return records


def field(records: np.ndarray, fields: list, name: str) -> np.ndarray:
    i = [f[0] for f in fields].index(name)
    return records[f"{name}{i}"]


# ------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("suffix", WRITE_FORMATS)
@pytest.mark.parametrize("with_values", [False, True])
def test_write_read_round_trip(tmp_path, points, scores, suffix, with_values):
    values = scores if with_values else None
    path = write_points(tmp_path / f"cloud{suffix}", points, values)
    cloud = read_points(path)
    assert isinstance(cloud, PointCloud)
    assert len(cloud) == len(points) and cloud.path == path
    np.testing.assert_array_equal(cloud.points.astype(np.float32), points)
    if with_values:
        np.testing.assert_array_equal(cloud.values.astype(np.float32), scores)
    else:
        assert cloud.values is None


@pytest.mark.parametrize("suffix", WRITE_FORMATS)
def test_integer_labels_round_trip(tmp_path, points, suffix):
    labels = np.arange(len(points)) % 3
    cloud = read_points(write_points(tmp_path / f"labels{suffix}", points, labels))
    np.testing.assert_array_equal(cloud.values, labels)


@pytest.mark.parametrize("data", ["ascii", "binary", "binary_compressed"])
@pytest.mark.parametrize("with_values", [False, True])
def test_pcd_data_kinds(tmp_path, points, scores, data, with_values):
    path = tmp_path / f"{data}.pcd"
    write_pcd(path, points, scores if with_values else None, data=data)
    assert f"DATA {data}\n".encode() in path.read_bytes()[:400]
    cloud = read_points(path)
    np.testing.assert_array_equal(cloud.points, points)
    if with_values:
        np.testing.assert_array_equal(cloud.values, scores)


@pytest.mark.parametrize("fmt", ["ascii", "binary_little_endian", "binary_big_endian"])
@pytest.mark.parametrize("with_values", [False, True])
def test_ply_formats(tmp_path, points, scores, fmt, with_values):
    path = tmp_path / f"{fmt}.ply"
    faces = np.array([[0, 1, 2], [2, 3, 4]])
    write_ply(path, points, scores if with_values else None, faces=faces, fmt=fmt)
    assert f"format {fmt} 1.0".encode() in path.read_bytes()[:200]
    cloud = read_points(path)
    assert cloud.points.dtype == np.float32 and cloud.points.dtype.isnative
    np.testing.assert_array_equal(cloud.points, points)
    np.testing.assert_array_equal(cloud.faces, faces)
    if with_values:
        np.testing.assert_array_equal(cloud.values, scores)


@pytest.mark.parametrize("suffix", WRITE_FORMATS)
def test_float64_input(tmp_path, points, suffix):
    points64 = points.astype(np.float64) + 1e-9
    cloud = read_points(write_points(tmp_path / f"f64{suffix}", points64))
    exact = suffix in (".npy", ".npz", ".txt", ".xyz", ".csv")
    if exact:
        np.testing.assert_array_equal(cloud.points, points64)
    else:  # PCD / PLY store float32
        np.testing.assert_allclose(cloud.points, points64, rtol=1e-6, atol=1e-6)


def test_ply_writes_scores_with_the_colours_given(tmp_path, points, scores):
    plain = write_points(tmp_path / "plain.ply", points, scores)
    assert b"property uchar red" not in plain.read_bytes()[:400]  # io adds no colour policy
    path = write_points(tmp_path / "scored.ply", points, scores, colors=colormap(scores))
    header = path.read_bytes()[:400]
    assert b"property uchar red" in header and b"property float score" in header
    body = np.frombuffer(
        path.read_bytes()[header.index(b"end_header\n") + 11 :],
        dtype=[("xyz", "<f4", 3), ("score", "<f4"), ("rgb", "u1", 3)],
    )
    np.testing.assert_array_equal(body["rgb"], colormap(scores))


def test_ply_explicit_colours(tmp_path, points):
    colors = np.tile(np.array([[10, 20, 30]], np.uint8), (len(points), 1))
    path = write_points(tmp_path / "c.ply", points, colors=colors)
    assert b"property uchar green" in path.read_bytes()[:400]
    np.testing.assert_array_equal(read_points(path).points, points)


# ------------------------------------------------------------------- PCD layout variety

PCD_LAYOUTS = [
    [("x", "F", 4, 1), ("y", "F", 4, 1), ("z", "F", 4, 1)],
    [("z", "F", 4, 1), ("x", "F", 4, 1), ("y", "F", 4, 1)],
    [("rgb", "U", 4, 1), ("y", "F", 4, 1), ("label", "U", 4, 1), ("x", "F", 4, 1),
     ("z", "F", 4, 1)],
    [("x", "F", 8, 1), ("normal", "F", 4, 3), ("y", "F", 8, 1), ("z", "F", 8, 1),
     ("intensity", "U", 1, 1), ("score", "F", 4, 1)],
    [("_", "U", 1, 4), ("x", "I", 2, 1), ("y", "I", 2, 1), ("z", "I", 2, 1), ("_", "U", 1, 2),
     ("fpfh", "F", 4, 33)],
]  # fmt: skip


@pytest.mark.parametrize("layout", PCD_LAYOUTS, ids=lambda f: "-".join(x[0] for x in f))
@pytest.mark.parametrize("data", ["ascii", "binary", "binary_compressed"])
def test_pcd_field_orders_and_extra_fields(tmp_path, layout, data):
    rng = np.random.default_rng(2)
    n = 40
    records = structured(layout, n, rng)
    if data == "binary":
        body = records.tobytes()
    elif data == "binary_compressed":
        raw = b"".join(records[k].tobytes() for k in records.dtype.names)
        packed = lzf.compress(raw)
        body = struct.pack("<II", len(packed), len(raw)) + packed
    else:
        flat = [records[k].reshape(n, -1).astype(np.float64) for k in records.dtype.names]
        table = np.hstack(flat)
        body = "".join(" ".join(f"{v:.17g}" for v in row) + "\n" for row in table).encode()
    path = tmp_path / "layout.pcd"
    path.write_bytes(pcd_bytes(layout, n, data, body))
    cloud = read_points(path)
    expected = np.stack([field(records, layout, a) for a in "xyz"], axis=1)
    np.testing.assert_array_equal(cloud.points, expected)
    names = [f[0] for f in layout]
    value_name = next((v for v in ("label", "score") if v in names), None)
    if value_name:
        np.testing.assert_array_equal(cloud.values, field(records, layout, value_name))
    else:
        assert cloud.values is None


def test_pcd_float64_fields_give_float64(tmp_path):
    cloud_path = tmp_path / "d.pcd"
    pts = np.random.default_rng(3).normal(size=(5, 3))
    fields = [("x", "F", 8, 1), ("y", "F", 8, 1), ("z", "F", 8, 1)]
    cloud_path.write_bytes(pcd_bytes(fields, 5, "binary", pts.tobytes()))
    cloud = read_points(cloud_path)
    assert cloud.points.dtype == np.float64
    np.testing.assert_array_equal(cloud.points, pts)


def test_pcd_organised_cloud_drop_nan(tmp_path):
    pts = np.arange(24, dtype=np.float32).reshape(8, 3)
    pts[[1, 5]] = np.nan
    text = pcd_bytes(
        [("x", "F", 4, 1), ("y", "F", 4, 1), ("z", "F", 4, 1)], 8, "binary", pts.tobytes()
    ).replace(b"WIDTH 8\nHEIGHT 1", b"WIDTH 4\nHEIGHT 2")
    path = tmp_path / "organised.pcd"
    path.write_bytes(text)
    cloud = read_points(path, nonfinite="drop")
    np.testing.assert_array_equal(cloud.points, pts[[0, 2, 3, 4, 6, 7]])


# ------------------------------------------------------------------- PLY layout variety


def ply_header(fmt: str, vertex_props: list[tuple[str, str]], n: int, extra: str = "") -> bytes:
    props = "".join(f"property {t} {name}\n" for name, t in vertex_props)
    return (
        f"ply\nformat {fmt} 1.0\ncomment test\nelement vertex {n}\n{props}{extra}end_header\n"
    ).encode()


PLY_TYPES = {"float": "f4", "double": "f8", "uchar": "u1", "int": "i4", "short": "i2"}


@pytest.mark.parametrize(
    "props",
    [
        [("x", "float"), ("y", "float"), ("z", "float")],
        [("nx", "float"), ("z", "float"), ("y", "float"), ("x", "float"), ("label", "uchar")],
        [("x", "double"), ("y", "double"), ("z", "double"), ("scalar", "float"),
         ("red", "uchar"), ("green", "uchar"), ("blue", "uchar")],
        [("y", "short"), ("x", "int"), ("score", "double"), ("z", "float")],
    ],
    ids=lambda p: "-".join(x[0] for x in p),
)  # fmt: skip
@pytest.mark.parametrize("fmt", ["ascii", "binary_little_endian", "binary_big_endian"])
def test_ply_property_orders_with_polygon_faces(tmp_path, props, fmt):
    n = 12
    order = ">" if fmt == "binary_big_endian" else "<"
    dtype = np.dtype([(name, order + PLY_TYPES[t]) for name, t in props])
    records = np.zeros(n, dtype=dtype)
    rng = np.random.default_rng(4)
    for name in dtype.names:
        records[name] = rng.integers(0, 50, n)
    # a triangle, a quad and a pentagon: lists of different lengths
    polygons = [[0, 1, 2], [3, 4, 5, 6], [7, 8, 9, 10, 11]]
    extra = (
        "element face 3\nproperty list uchar int vertex_indices\nproperty uchar flags\n"
        "element edge 2\nproperty int vertex1\nproperty int vertex2\n"
    )
    header = ply_header(fmt, props, n, extra)
    if fmt == "ascii":
        rows = [" ".join(str(records[k][i]) for k in dtype.names) for i in range(n)]
        rows += [f"{len(p)} {' '.join(map(str, p))} 7" for p in polygons]
        rows += ["0 1", "1 2"]
        body = ("\n".join(rows) + "\n").encode()
    else:
        body = records.tobytes()
        for p in polygons:
            body += np.array([len(p)], "u1").tobytes() + np.array(p, order + "i4").tobytes()
            body += b"\x07"
        body += np.array([0, 1, 1, 2], order + "i4").tobytes()
    path = tmp_path / "poly.ply"
    path.write_bytes(header + body)
    cloud = read_points(path)
    expected = np.stack([records[a].astype(np.float64) for a in "xyz"], axis=1)
    np.testing.assert_array_equal(cloud.points, expected)
    expected_faces = [[0, 1, 2], [3, 4, 5], [3, 5, 6], [7, 8, 9], [7, 9, 10], [7, 10, 11]]
    assert sorted(cloud.faces.tolist()) == sorted(expected_faces)
    value = next((v for v in ("label", "score", "scalar") if v in dtype.names), None)
    if value:
        np.testing.assert_array_equal(cloud.values, records[value])
    else:
        assert cloud.values is None


# ------------------------------------------------------------------ text, arrays, meshes


def test_text_variants(tmp_path):
    expected = np.array([[1.0, 2.0, 3.0], [4.0, 5.5, -6.0], [7e-3, 8.0, 9.0]])
    variants = {
        "plain.xyz": "1 2 3\n4 5.5 -6\n7e-3 8 9\n",
        "tabs.txt": "# scanner output\n\n1\t2\t3\n4  5.5 -6   \n# mid comment\n7e-3 8 9\n",
        "header.csv": "x,y,z\n1,2,3\n4, 5.5 ,-6\n7e-3,8,9\n",
        "count.pts": "3\n1 2 3\n4 5.5 -6\n7e-3 8 9\n",
        "crlf.txt": "1 2 3\r\n4 5.5 -6\r\n7e-3 8 9\r\n",
    }
    for name, text in variants.items():
        (tmp_path / name).write_text(text)
        cloud = read_points(tmp_path / name)
        np.testing.assert_array_equal(cloud.points, expected, err_msg=name)
        assert cloud.values is None


def test_text_fourth_column_is_values(tmp_path):
    (tmp_path / "scored.csv").write_text("x,y,z,label\n0,0,0,1\n1,1,1,0\n")
    cloud = read_points(tmp_path / "scored.csv")
    np.testing.assert_array_equal(cloud.values, [1, 0])


def test_npy_n4_and_npz_variants(tmp_path, points, scores):
    np.save(tmp_path / "four.npy", np.column_stack([points, scores]))
    cloud = read_points(tmp_path / "four.npy")
    np.testing.assert_array_equal(cloud.points, points)
    np.testing.assert_array_equal(cloud.values, scores)
    np.savez(tmp_path / "single.npz", points)
    np.testing.assert_array_equal(read_points(tmp_path / "single.npz").points, points)
    np.savez(tmp_path / "labels.npz", points=points, labels=np.arange(len(points)))
    np.testing.assert_array_equal(read_points(tmp_path / "labels.npz").values, np.arange(257))


@pytest.mark.parametrize("suffix", [".stl", ".obj", ".off", ".ply"])
def test_mesh_formats(tmp_path, suffix):
    box = trimesh.creation.box(extents=(2.0, 2.0, 2.0))
    path = tmp_path / f"box{suffix}"
    box.export(path)
    cloud = read_points(path)
    assert cloud.faces is not None and cloud.faces.shape == (12, 3)
    assert cloud.points.shape == (8, 3)
    vertices, faces = read_mesh(path)
    assert vertices.dtype == np.float64 and faces.dtype == np.int64
    np.testing.assert_allclose(np.abs(vertices), 1.0)
    surface = load_surface(path, 100, seed=0)
    assert surface.shape == (100, 3)
    np.testing.assert_allclose(np.abs(surface).max(axis=1), 1.0, atol=1e-9)


def test_vertex_only_obj_is_a_point_cloud(tmp_path):
    path = tmp_path / "cloud.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    cloud = read_points(path)
    np.testing.assert_array_equal(cloud.points, [[0, 0, 0], [1, 0, 0], [0, 1, 0]])
    assert cloud.faces is None
    np.testing.assert_array_equal(load_surface(path, 10), cloud.points)


def test_format_lists():
    assert set(WRITE_FORMATS) <= set(READ_FORMATS)
    assert {".pcd", ".ply", ".xyz", ".txt", ".csv", ".pts", ".npy", ".npz", ".stl", ".obj",
            ".off"} == set(READ_FORMATS)  # fmt: skip


def test_colormap_basics():
    values = np.array([0.0, 0.5, 1.0, np.nan])
    for name in ("turbo", "viridis", "gray"):
        rgb = colormap(values, name)
        assert rgb.shape == (4, 3) and rgb.dtype == np.uint8
        np.testing.assert_array_equal(rgb[3], [128, 128, 128])
    np.testing.assert_array_equal(colormap(values, "gray")[:3, 0], [0, 128, 255])
    np.testing.assert_array_equal(colormap([5.0, 5.0], "gray"), [[128] * 3] * 2)
    with pytest.raises(ValueError, match="unknown colormap"):
        colormap(values, "nope")


def test_uppercase_extension(tmp_path, points):
    path = write_points(tmp_path / "CLOUD.PCD", points)
    assert isinstance(path, Path)
    np.testing.assert_array_equal(read_points(path).points, points)
