"""Every malformed input gives an InputError whose message names the file."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from mvr3d.errors import InputError, MVR3DError
from mvr3d.io import read_mesh, read_points, sample_surface, validate_points, write_points
from mvr3d.io.lzf import LZFError, decompress
from mvr3d.io.pcd import write_pcd
from mvr3d.io.ply import write_ply

XYZ_HEADER = (
    "VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\n"
    "WIDTH {w}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA {data}\n"
)


def pcd(n: int, data: str = "binary", width: int | None = None) -> bytes:
    return XYZ_HEADER.format(w=n if width is None else width, n=n, data=data).encode()


def body(n: int) -> bytes:
    return np.arange(3 * n, dtype="<f4").tobytes()


def expect_error(path, match: str) -> InputError:
    with pytest.raises(InputError, match=match) as info:
        read_points(path)
    assert isinstance(info.value, MVR3DError) and isinstance(info.value, ValueError)
    assert path.name in str(info.value)
    return info.value


def write(tmp_path, name: str, data: bytes | str):
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


@pytest.mark.parametrize("suffix", [".pcd", ".ply", ".xyz", ".csv", ".npy", ".npz", ".stl"])
def test_empty_file(tmp_path, suffix):
    expect_error(write(tmp_path, f"empty{suffix}", b""), ".")


def test_empty_clouds(tmp_path):
    expect_error(write(tmp_path, "zero.pcd", pcd(0) + b""), "empty")
    expect_error(write(tmp_path, "comments.xyz", "# nothing here\n\n"), "empty")
    expect_error(write(tmp_path, "header_only.csv", "x,y,z\n"), "empty")


@pytest.mark.parametrize("suffix", [".pcd", ".ply", ".xyz", ".npy", ".npz"])
def test_one_point_cloud(tmp_path, suffix):
    path = tmp_path / f"one{suffix}"
    one = np.zeros((1, 3), np.float32)
    if suffix == ".pcd":
        write_pcd(path, one)
    elif suffix == ".ply":
        write_ply(path, one)
    elif suffix == ".npy":
        np.save(path, one)
    elif suffix == ".npz":
        np.savez(path, points=one)
    else:
        path.write_text("1 2 3\n")
    expect_error(path, "one-point cloud")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("suffix", [".pcd", ".ply", ".txt", ".npy"])
def test_nonfinite_coordinates(tmp_path, bad, suffix):
    pts = np.ones((10, 3), np.float32)
    pts[[3, 7], 1] = bad
    path = tmp_path / f"nan{suffix}"
    if suffix == ".pcd":
        write_pcd(path, pts)
    elif suffix == ".ply":
        write_ply(path, pts)
    elif suffix == ".npy":
        np.save(path, pts)
    else:
        path.write_text("".join(f"{a} {b} {c}\n" for a, b, c in pts))
    expect_error(path, r"2 of 10 points have non-finite .*first at index 3")
    cloud = read_points(path, nonfinite="drop")
    assert len(cloud) == 8


def test_drop_nonfinite_keeps_faces_consistent(tmp_path):
    pts = np.array([[0, 0, 0], [np.nan, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], np.float32)
    path = tmp_path / "mesh.ply"
    write_ply(path, pts, faces=np.array([[0, 1, 2], [0, 2, 3], [2, 4, 3]]))
    cloud = read_points(path, nonfinite="drop")
    np.testing.assert_array_equal(cloud.faces, [[0, 1, 2], [1, 3, 2]])


def test_truncated_binary_pcd(tmp_path):
    path = write(tmp_path, "short.pcd", pcd(100) + body(100)[:-5])
    expect_error(path, r"truncated: header says 100 points \(1200 bytes\) but file has 1195 bytes")


def test_longer_binary_pcd(tmp_path):
    expect_error(write(tmp_path, "long.pcd", pcd(10) + body(11)), "12 unexplained extra bytes")


def test_pcd_points_disagree_with_width(tmp_path):
    expect_error(write(tmp_path, "wh.pcd", pcd(10, width=9) + body(10)), "POINTS 10 != WIDTH 9")


def test_pcd_huge_header_fails_fast(tmp_path):
    for data in ("binary", "binary_compressed", "ascii"):
        path = write(tmp_path, f"huge_{data}.pcd", pcd(10**12, data) + body(4))
        expect_error(path, "1000000000000 points")


def test_pcd_compressed_size_lies(tmp_path):
    good = tmp_path / "c.pcd"
    write_pcd(good, np.ones((50, 3), np.float32), data="binary_compressed")
    raw = good.read_bytes()
    at = raw.index(b"DATA binary_compressed\n") + len(b"DATA binary_compressed\n")
    comp, size = struct.unpack("<II", raw[at : at + 8])
    expect_error(write(tmp_path, "cut.pcd", raw[:-3]), "truncated")
    bad_size = raw[:at] + struct.pack("<II", comp, size + 4) + raw[at + 8 :]
    expect_error(write(tmp_path, "size.pcd", bad_size), "compressed block holds")
    corrupt = raw[: at + 8] + b"\xff" * comp
    expect_error(write(tmp_path, "corrupt.pcd", corrupt), "corrupt")


def test_pcd_missing_keys_and_bad_values(tmp_path):
    no_size = pcd(2).replace(b"SIZE 4 4 4\n", b"")
    expect_error(write(tmp_path, "nosize.pcd", no_size + body(2)), "missing SIZE")
    no_z = pcd(2).replace(b"FIELDS x y z", b"FIELDS x y w")
    expect_error(write(tmp_path, "noz.pcd", no_z + body(2)), "no 'z' field")
    short = pcd(2).replace(b"TYPE F F F", b"TYPE F F")
    expect_error(write(tmp_path, "types.pcd", short + body(2)), "3 FIELDS but 2 TYPE")
    weird = pcd(2).replace(b"DATA binary", b"DATA zipped")
    expect_error(write(tmp_path, "zip.pcd", weird + body(2)), "unsupported DATA")
    expect_error(write(tmp_path, "nodata.pcd", pcd(2).split(b"DATA")[0]), "without DATA")
    expect_error(write(tmp_path, "junk.pcd", b"hello world\n"), "not a PCD file")


def test_pcd_ascii_count_mismatch_and_bad_value(tmp_path):
    expect_error(write(tmp_path, "a.pcd", pcd(3, "ascii") + b"1 2 3\n4 5 6\n"), "truncated")
    expect_error(write(tmp_path, "b.pcd", pcd(1, "ascii") + b"1 2 3\n4 5 6\n"), "6 numbers")
    path = write(tmp_path, "c.pcd", pcd(2, "ascii") + b"1 2 3\n4 five 6\n")
    expect_error(path, "'five' of point 1 is not a number")


def _ply(fmt: str, n: int, faces: int | None = None) -> bytes:
    text = f"ply\nformat {fmt} 1.0\nelement vertex {n}\n"
    text += "property float x\nproperty float y\nproperty float z\n"
    if faces is not None:
        text += f"element face {faces}\nproperty list uchar int vertex_indices\n"
    return (text + "end_header\n").encode()


def test_truncated_binary_ply(tmp_path):
    expect_error(write(tmp_path, "t.ply", _ply("binary_little_endian", 10) + body(9)), "truncated")
    tri = np.array([3, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0], "u1").tobytes()
    path = write(tmp_path, "f.ply", _ply("binary_little_endian", 3, 2) + body(3) + tri)
    expect_error(path, "truncated: element 'face'")


def test_ply_count_mismatches(tmp_path):
    longer = _ply("binary_little_endian", 10) + body(11)
    expect_error(write(tmp_path, "l.ply", longer), "12 unexplained bytes")
    ascii_long = _ply("ascii", 2) + b"1 2 3\n4 5 6\n7 8 9\n"
    expect_error(write(tmp_path, "al.ply", ascii_long), "3 unexplained values")
    ascii_short = _ply("ascii", 3) + b"1 2 3\n4 5 6\n"
    expect_error(write(tmp_path, "as.ply", ascii_short), "truncated")
    bad_index = _ply("ascii", 3, 1) + b"0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n"
    expect_error(write(tmp_path, "idx.ply", bad_index), "out of range")


def test_ply_header_errors(tmp_path):
    expect_error(
        write(tmp_path, "a.ply", b"ply\nformat ascii 1.0\nelement vertex 2\n"), "end_header"
    )
    expect_error(write(tmp_path, "b.ply", b"PLY?\n"), "not a PLY file")
    no_z = _ply("ascii", 2).replace(b"property float z\n", b"")
    expect_error(write(tmp_path, "c.ply", no_z + b"1 2\n3 4\n"), "no scalar 'z'")
    fmt = _ply("ascii", 2).replace(b"ascii", b"binary_middle_endian")
    expect_error(write(tmp_path, "d.ply", fmt), "unsupported PLY format")
    no_vertex = b"ply\nformat ascii 1.0\nelement face 0\nend_header\n"
    expect_error(write(tmp_path, "e.ply", no_vertex), "no 'vertex' element")


def test_ply_huge_header_fails_fast(tmp_path):
    for fmt in ("binary_little_endian", "ascii"):
        path = write(tmp_path, f"huge_{fmt}.ply", _ply(fmt, 10**12) + body(2))
        expect_error(path, "truncated")


def test_unknown_extension(tmp_path):
    error = expect_error(write(tmp_path, "cloud.las", b"x"), "supported: .pcd .ply")
    assert ".npz" in str(error)
    expect_error(write(tmp_path, "noext", b"x"), "without an extension")
    with pytest.raises(InputError, match="cloud.las"):
        write_points(tmp_path / "cloud.las", np.zeros((3, 3)))


def test_missing_file_and_directory(tmp_path):
    expect_error(tmp_path / "missing.pcd", "file not found")
    (tmp_path / "folder.ply").mkdir()
    expect_error(tmp_path / "folder.ply", "is a directory")


def test_bad_text_rows_report_line_numbers(tmp_path):
    path = write(tmp_path, "bad.xyz", "# c\n1 2 3\n4 5 6\n7 8\n")
    expect_error(path, "line 4: expected 3 columns, found 2")
    path = write(tmp_path, "bad.csv", "x,y,z\n1,2,3\n4,oops,6\n")
    expect_error(path, "line 3: 'oops' is not a number")
    path = write(tmp_path, "first.txt", "1 2 abc\n1 2 3\n")
    expect_error(path, "line 1: 'abc' is not a number")
    expect_error(write(tmp_path, "five.txt", "1 2 3 4 5\n1 2 3 4 5\n"), "3 or 4 columns")
    expect_error(write(tmp_path, "latin.txt", b"1 2 3\n\xff\xfe\n"), "not a UTF-8")


def test_array_errors(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros(9))
    expect_error(tmp_path / "flat.npy", r"shape \(N, 3\) or \(N, 4\)")
    expect_error(write(tmp_path, "junk.npy", b"not numpy"), "not a readable .npy")
    expect_error(write(tmp_path, "junk.npz", b"not a zip"), "not a readable .npz")
    np.savez(tmp_path / "two.npz", a=np.zeros((3, 3)), b=np.zeros((3, 3)))
    expect_error(tmp_path / "two.npz", "expected a 'points' array")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object))
    expect_error(tmp_path / "obj.npy", "not a readable .npy")


def test_mesh_errors(tmp_path):
    expect_error(write(tmp_path, "bad.off", "OFF\n3 1 0\n0 0 0\n"), ".")
    cloud = tmp_path / "cloud.ply"
    write_ply(cloud, np.eye(3, dtype=np.float32))
    with pytest.raises(InputError, match="cloud.ply: .*no triangle faces"):
        read_mesh(cloud)
    with pytest.raises(InputError, match="no triangle faces"):
        sample_surface(np.eye(3), np.empty((0, 3), int), 10, 0)
    with pytest.raises(InputError, match="degenerate"):
        sample_surface(np.zeros((3, 3)), np.array([[0, 1, 2]]), 10, 0)


def test_validate_points_messages():
    with pytest.raises(InputError, match=r"shape \(N, 3\)"):
        validate_points(np.zeros((4, 2)))
    with pytest.raises(InputError, match="src.pcd: point cloud is empty"):
        validate_points(np.zeros((0, 3)), "src.pcd")
    with pytest.raises(InputError, match="one-point cloud"):
        validate_points(np.zeros((1, 3)))
    with pytest.raises(InputError, match="only 3 points"):
        validate_points(np.zeros((3, 3)), min_points=5)
    assert validate_points(np.zeros((2, 3), int)).dtype == np.float64


def test_write_rejects_bad_values(tmp_path):
    with pytest.raises(InputError, match="out.pcd: expected values of shape"):
        write_points(tmp_path / "out.pcd", np.zeros((3, 3)), np.zeros(2))
    with pytest.raises(InputError, match="non-finite"):
        write_points(tmp_path / "out.ply", np.full((3, 3), np.nan))
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_lzf_rejects_corrupt_streams():
    for bad, size in ((b"\x05ab", 6), (b"\x20\x00", 3), (b"\x00a\xe0", 10), (b"\x00a", 5)):
        with pytest.raises(LZFError):
            decompress(bad, size)
