"""PLY point clouds and meshes: ascii, binary_little_endian and binary_big_endian."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from mvr3d.errors import InputError
from mvr3d.io.cloud import PointCloud, native_column, xyz_from_records
from mvr3d.io.text import format_rows, is_number
from mvr3d.utils.atomic import atomic_write

__all__ = ["read_ply", "write_ply"]

FORMATS = {"ascii": "=", "binary_little_endian": "<", "binary_big_endian": ">"}
VALUE_PROPERTIES = ("label", "score", "scalar")
FACE_PROPERTIES = ("vertex_indices", "vertex_index")
_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
_MAX_HEADER_BYTES = 1 << 20


@dataclass(frozen=True)
class Property:
    name: str
    dtype: np.dtype
    count_dtype: np.dtype | None = None  # set for list properties

    @property
    def is_list(self) -> bool:
        return self.count_dtype is not None


@dataclass
class Element:
    name: str
    count: int
    properties: list[Property]

    @property
    def keys(self) -> list[str]:
        """Unique structured-dtype names for the properties."""
        return [f"{p.name}__{i}" for i, p in enumerate(self.properties)]

    def find(self, names: tuple[str, ...]) -> int | None:
        for name in names:
            for i, prop in enumerate(self.properties):
                if prop.name == name:
                    return i
        return None


# --------------------------------------------------------------------------- reading


def read_ply(path: str | Path) -> PointCloud:
    """Read a PLY; ``label``/``score``/``scalar`` vertex properties become ``values``."""
    path = Path(path)
    with open(path, "rb") as handle:
        fmt, elements = _read_header(handle, path)
        size = os.fstat(handle.fileno()).st_size - handle.tell()
        body = np.empty(size, dtype=np.uint8)  # aligned, writable buffer for zero-copy views
        if handle.readinto(memoryview(body)) != size:
            raise InputError("file changed while reading", path)
    vertex = next((e for e in elements if e.name == "vertex"), None)
    if vertex is None:
        raise InputError("PLY has no 'vertex' element", path)
    for axis in ("x", "y", "z"):
        index = vertex.find((axis,))
        if index is None or vertex.properties[index].is_list:
            raise InputError(f"PLY vertex element has no scalar '{axis}' property", path)
    parse = _parse_ascii if fmt == "ascii" else _parse_binary
    data = parse(body, elements, FORMATS[fmt], path)
    return _assemble(data, vertex, elements, path)


def _read_header(handle: BinaryIO, path: Path) -> tuple[str, list[Element]]:
    first = handle.readline(16).strip()
    if first != b"ply":
        raise InputError("not a PLY file (first line is not 'ply')", path)
    fmt: str | None = None
    elements: list[Element] = []
    consumed = len(first)
    while True:
        raw = handle.readline(_MAX_HEADER_BYTES - consumed)
        consumed += len(raw)
        if not raw or consumed >= _MAX_HEADER_BYTES:
            raise InputError("PLY header has no end_header line", path)
        try:
            words = raw.decode("ascii").split()
        except UnicodeDecodeError:
            raise InputError("PLY header contains non-ASCII bytes", path) from None
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "end_header":
            break
        if words[0] == "format":
            fmt = _parse_format(words, path)
        elif words[0] == "element":
            elements.append(_parse_element(words, elements, path))
        elif words[0] == "property":
            if not elements:
                raise InputError("PLY property declared before any element", path)
            prop = _parse_property(words, path)
            if any(p.name == prop.name for p in elements[-1].properties):
                raise InputError(
                    f"PLY element '{elements[-1].name}' declares property '{prop.name[:40]}' twice", path
                )
            elements[-1].properties.append(prop)
        else:
            raise InputError(f"unknown PLY header line {' '.join(words)[:60]!r}", path)
    if fmt is None:
        raise InputError("PLY header has no format line", path)
    return fmt, elements


def _parse_format(words: list[str], path: Path) -> str:
    if len(words) != 3 or words[1] not in FORMATS:
        raise InputError(f"unsupported PLY format line {' '.join(words)[:60]!r}", path)
    return words[1]


def _parse_element(words: list[str], elements: list[Element], path: Path) -> Element:
    if len(words) != 3 or not words[2].isdigit():
        raise InputError(f"bad PLY element line {' '.join(words)[:60]!r}", path)
    if any(e.name == words[1] for e in elements):
        raise InputError(f"PLY declares element {words[1][:40]!r} twice", path)
    return Element(words[1], int(words[2]), [])


def _parse_property(words: list[str], path: Path) -> Property:
    line = " ".join(words)[:60]
    if len(words) == 3 and words[1] in _TYPES:
        return Property(words[2], np.dtype(_TYPES[words[1]]))
    if len(words) == 5 and words[1] == "list" and words[2] in _TYPES and words[3] in _TYPES:
        count = np.dtype(_TYPES[words[2]])
        if count.kind == "f":
            raise InputError(f"PLY list count must be an integer type: {line!r}", path)
        return Property(words[4], np.dtype(_TYPES[words[3]]), count)
    raise InputError(f"bad PLY property line {line!r}", path)


# Parsed data: element name -> {property index: array}; list properties give (rows, k) or
# a list of 1-D arrays when rows have different lengths.
Parsed = dict[str, dict[int, object]]


def _parse_binary(body: np.ndarray, elements: list[Element], order: str, path: Path) -> Parsed:
    data: Parsed = {}
    offset = 0
    for element in elements:
        if any(p.is_list for p in element.properties):
            data[element.name], offset = _binary_lists(body, offset, element, order, path)
        else:
            data[element.name], offset = _binary_fixed(body, offset, element, order, path)
    if offset != body.size:
        raise InputError(
            f"{body.size - offset} unexplained bytes after the last element "
            f"(header counts disagree with the data)",
            path,
        )
    return data


def _truncated(element: Element, needed: int, left: int, path: Path) -> InputError:
    return InputError(
        f"truncated: element '{element.name}' with {element.count} rows needs {needed} bytes "
        f"but only {left} remain",
        path,
    )


def _binary_fixed(
    body: np.ndarray, offset: int, element: Element, order: str, path: Path
) -> tuple[dict[int, object], int]:
    dtype = np.dtype(
        [
            (k, p.dtype.newbyteorder(order))
            for k, p in zip(element.keys, element.properties, strict=True)
        ]
    )
    size = element.count * dtype.itemsize
    # Checked before any allocation, so a header claiming 10^12 vertices fails at once.
    if offset + size > body.size:
        raise _truncated(element, size, body.size - offset, path)
    if dtype.itemsize == 0:
        return {}, offset
    records = body[offset : offset + size].view(dtype)
    return {"records": records}, offset + size  # type: ignore[dict-item]


def _binary_lists(
    body: np.ndarray, offset: int, element: Element, order: str, path: Path
) -> tuple[dict[int, object], int]:
    if element.count == 0:
        return {}, offset
    uniform = _binary_uniform(body, offset, element, order, path)
    if uniform is not None:
        return uniform
    return _binary_rows(body, offset, element, order, path)


def _row0_lengths(body: np.ndarray, offset: int, element: Element, order: str) -> list[int] | None:
    lengths = []
    for prop in element.properties:
        if prop.is_list:
            dt = prop.count_dtype.newbyteorder(order)  # type: ignore[union-attr]
            if offset + dt.itemsize > body.size:
                return None
            k = int(body[offset : offset + dt.itemsize].view(dt)[0])
            if k < 0:
                return None
            lengths.append(k)
            offset += dt.itemsize + k * prop.dtype.itemsize
        else:
            offset += prop.dtype.itemsize
    return lengths if offset <= body.size else None


def _binary_uniform(
    body: np.ndarray, offset: int, element: Element, order: str, path: Path
) -> tuple[dict[int, object], int] | None:
    """Vectorised path for the usual case: every row's lists as long as row 0's."""
    lengths = _row0_lengths(body, offset, element, order)
    if lengths is None:
        raise InputError(
            f"truncated: the first row of element '{element.name}' runs past the end of the file",
            path,
        )
    fields: list[tuple] = []
    list_keys: list[str] = []
    it = iter(lengths)
    for key, prop in zip(element.keys, element.properties, strict=True):
        if prop.is_list:
            count_dtype = prop.count_dtype.newbyteorder(order)  # type: ignore[union-attr]
            list_keys.append(f"{key}#n")
            fields.append((list_keys[-1], count_dtype))
            fields.append((key, prop.dtype.newbyteorder(order), (next(it),)))
        else:
            fields.append((key, prop.dtype.newbyteorder(order)))
    dtype = np.dtype(fields)
    size = element.count * dtype.itemsize
    if offset + size > body.size:
        return None
    records = body[offset : offset + size].view(dtype)
    for count_key, k in zip(list_keys, lengths, strict=True):
        if not np.all(records[count_key] == k):
            return None
    out: dict[int, object] = {i: native_column(records[key]) for i, key in enumerate(element.keys)}
    return out, offset + size


def _binary_rows(
    body: np.ndarray, offset: int, element: Element, order: str, path: Path
) -> tuple[dict[int, object], int]:
    """Row-by-row fallback for lists of varying length (mixed polygons); sequential by nature."""
    raw = body.data.cast("B")
    columns: dict[int, list] = {i: [] for i in range(len(element.properties))}
    for _ in range(element.count):
        for i, prop in enumerate(element.properties):
            k = 1
            if prop.is_list:
                cdt = prop.count_dtype.newbyteorder(order)  # type: ignore[union-attr]
                if offset + cdt.itemsize > body.size:
                    raise _truncated(element, offset + cdt.itemsize, body.size, path)
                k = int(np.frombuffer(raw, cdt, 1, offset)[0])
                offset += cdt.itemsize
            nbytes = k * prop.dtype.itemsize
            if k < 0 or offset + nbytes > body.size:
                raise _truncated(element, offset + max(nbytes, 0), body.size, path)
            columns[i].append(np.frombuffer(raw, prop.dtype.newbyteorder(order), k, offset))
            offset += nbytes
    return _collect(columns, element), offset


def _collect(columns: dict[int, list], element: Element) -> dict[int, object]:
    """Scalar properties become 1-D arrays; list properties stay lists of arrays."""
    out: dict[int, object] = {}
    for i, prop in enumerate(element.properties):
        if prop.is_list:
            out[i] = columns[i]
        else:
            flat = np.concatenate(columns[i]) if columns[i] else np.empty(0, prop.dtype)
            out[i] = flat.astype(prop.dtype.newbyteorder("="))
    return out


def _parse_ascii(body: np.ndarray, elements: list[Element], order: str, path: Path) -> Parsed:
    del order
    tokens = body.tobytes().split()
    data: Parsed = {}
    pos = 0
    for element in elements:
        if any(p.is_list for p in element.properties):
            data[element.name], pos = _ascii_lists(tokens, pos, element, path)
        else:
            width = len(element.properties)
            needed = element.count * width
            if pos + needed > len(tokens):
                raise InputError(
                    f"truncated: element '{element.name}' with {element.count} rows needs "
                    f"{needed} values but only {len(tokens) - pos} remain",
                    path,
                )
            table = _floats(tokens[pos : pos + needed], path).reshape(element.count, width)
            data[element.name] = {
                i: _cast(table[:, i], p.dtype, path, element, p) for i, p in enumerate(element.properties)
            }
            pos += needed
    if pos != len(tokens):
        raise InputError(
            f"{len(tokens) - pos} unexplained values after the last element "
            f"(header counts disagree with the data)",
            path,
        )
    return data


def _floats(tokens: list[bytes], path: Path) -> np.ndarray:
    try:
        return np.array(tokens, dtype=np.float64)
    except ValueError:
        bad = next(t for t in tokens if not is_number(t))
        raise InputError(f"PLY ASCII value {bad[:40]!r} is not a number", path) from None


def _cast(
    column: np.ndarray, dtype: np.dtype, path: Path, element: Element, prop: Property, first_row: int = 0
) -> np.ndarray:
    """ASCII values as the declared type; an integer type takes only integers in its range
    (300 is no uchar, and coercing it would change the data silently)."""
    if dtype.kind == "f":
        return column.astype(dtype)
    info = np.iinfo(dtype)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(column) | (column != np.rint(column)) | (column < info.min) | (column > info.max)
    if bad.any():
        where = np.argwhere(bad)[0]
        row = first_row + int(where[0]) + 1
        value = column[tuple(where)]
        name = f"{np.dtype(dtype).name} {prop.name[:40]!r}"
        raise InputError(
            f"data row {row} of element '{element.name}': {value:g} is not a valid {name} "
            f"(integers {info.min}..{info.max})",
            path,
        )
    return column.astype(dtype)


def _ascii_lists(
    tokens: list[bytes], pos: int, element: Element, path: Path
) -> tuple[dict[int, object], int]:
    if element.count == 0:
        return {}, pos
    uniform = _ascii_uniform(tokens, pos, element, path)
    if uniform is not None:
        return uniform
    columns: dict[int, list] = {i: [] for i in range(len(element.properties))}
    for row in range(element.count):
        for i, prop in enumerate(element.properties):
            if pos >= len(tokens):
                raise InputError(
                    f"truncated: element '{element.name}' ends before its {element.count} rows",
                    path,
                )
            k = _ascii_count(tokens[pos], path) if prop.is_list else 1
            pos += 1 if prop.is_list else 0
            if pos + k > len(tokens):
                raise InputError(f"truncated: element '{element.name}' runs past the end", path)
            columns[i].append(_cast(_floats(tokens[pos : pos + k], path), prop.dtype, path, element, prop, row))
            pos += k
    return _collect(columns, element), pos


def _ascii_uniform(
    tokens: list[bytes], pos: int, element: Element, path: Path
) -> tuple[dict[int, object], int] | None:
    """Vectorised path when every row's lists are as long as row 0's."""
    starts, lengths, cursor = [], [], pos
    for prop in element.properties:
        if cursor >= len(tokens):
            return None
        k = _ascii_count(tokens[cursor], path) if prop.is_list else 1
        cursor += 1 if prop.is_list else 0
        starts.append(cursor - pos)
        lengths.append(k)
        cursor += k
    width = cursor - pos
    if pos + element.count * width > len(tokens):
        return None
    table = _floats(tokens[pos : pos + element.count * width], path).reshape(-1, width)
    for start, k, prop in zip(starts, lengths, element.properties, strict=True):
        if prop.is_list and not np.all(table[:, start - 1] == k):
            return None
    out: dict[int, object] = {}
    for i, (start, k, prop) in enumerate(zip(starts, lengths, element.properties, strict=True)):
        block = _cast(table[:, start : start + k], prop.dtype, path, element, prop)
        out[i] = block if prop.is_list else block[:, 0]
    return out, pos + element.count * width


def _ascii_count(token: bytes, path: Path) -> int:
    if not token.isdigit():
        raise InputError(f"PLY list length {token[:20]!r} is not a non-negative integer", path)
    return int(token)


# ------------------------------------------------------------------------ assembling


def _assemble(data: Parsed, vertex: Element, elements: list[Element], path: Path) -> PointCloud:
    columns = data.get("vertex", {})
    if "records" in columns:
        records = columns["records"]
        keys = [vertex.keys[vertex.find((a,))] for a in ("x", "y", "z")]  # type: ignore[index]
        points = xyz_from_records(records, tuple(keys))  # type: ignore[arg-type]
        column = lambda i: native_column(records[vertex.keys[i]])  # noqa: E731
    else:  # ascii, or a vertex element with list properties
        axes = [columns[vertex.find((a,))] for a in ("x", "y", "z")]  # type: ignore[index]
        all_f4 = all(a.dtype == np.float32 for a in axes)  # type: ignore[union-attr]
        points = np.stack(axes, axis=1).astype(np.float32 if all_f4 else np.float64)
        column = lambda i: columns[i]  # noqa: E731
    value_index = vertex.find(VALUE_PROPERTIES)
    values = None
    if value_index is not None and not vertex.properties[value_index].is_list:
        values = column(value_index)
    faces = _faces(data, elements, len(points), path)
    return PointCloud(points=points, values=values, faces=faces, path=path)


def _faces(data: Parsed, elements: list[Element], n_vertices: int, path: Path) -> np.ndarray | None:
    face = next((e for e in elements if e.name == "face"), None)
    if face is None:
        return None
    index = face.find(FACE_PROPERTIES)
    if index is None or not face.properties[index].is_list:
        raise InputError("PLY face element has no vertex_indices list", path)
    if face.count == 0:
        return np.empty((0, 3), dtype=np.int64)
    lists = data["face"][index]
    triangles = _triangulate(lists, path)
    if triangles.size and (triangles.min() < 0 or triangles.max() >= n_vertices):
        raise InputError(
            f"face vertex index out of range [0, {n_vertices}) "
            f"(found {triangles.min()}..{triangles.max()})",
            path,
        )
    return triangles


def _fan(polygons: np.ndarray) -> np.ndarray:
    """Triangulate (F, k) convex polygons as fans around their first vertex."""
    k = polygons.shape[1]
    first = np.repeat(polygons[:, :1], k - 2, axis=1)
    return np.stack([first, polygons[:, 1 : k - 1], polygons[:, 2:k]], axis=-1).reshape(-1, 3)


def _triangulate(lists: object, path: Path) -> np.ndarray:
    if isinstance(lists, np.ndarray):  # uniform (F, k)
        groups = [lists.reshape(lists.shape[0], -1)]
    else:
        rows = list(lists)  # type: ignore[call-overload]
        lengths = np.array([len(r) for r in rows])
        groups = [
            np.stack([rows[i] for i in np.flatnonzero(lengths == k)]) for k in np.unique(lengths)
        ]
    if any(g.shape[1] < 3 for g in groups):
        raise InputError("PLY face with fewer than 3 vertices", path)
    return np.concatenate([_fan(g.astype(np.int64)) for g in groups])


# --------------------------------------------------------------------------- writing


def write_ply(
    path: str | Path,
    points: np.ndarray,
    values: np.ndarray | None = None,
    *,
    colors: np.ndarray | None = None,
    faces: np.ndarray | None = None,
    fmt: str = "binary_little_endian",
) -> None:
    """Write x y z float32, an optional float32 ``score`` and optional uchar RGB colours."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {tuple(FORMATS)}, got {fmt!r}")
    order = "<" if fmt == "ascii" else FORMATS[fmt]
    fields = [("x", "f4"), ("y", "f4"), ("z", "f4")]
    fields += [("score", "f4")] if values is not None else []
    fields += [(c, "u1") for c in ("red", "green", "blue")] if colors is not None else []
    vertices = np.empty(
        len(points), dtype=[(n, np.dtype(t).newbyteorder(order)) for n, t in fields]
    )
    for i, axis in enumerate("xyz"):
        vertices[axis] = points[:, i]
    if values is not None:
        vertices["score"] = values
    if colors is not None:
        for i, channel in enumerate(("red", "green", "blue")):
            vertices[channel] = colors[:, i]
    triangles = None if faces is None else np.asarray(faces, dtype=np.int64)
    header = _format_header(fmt, fields, len(points), None if triangles is None else len(triangles))
    with atomic_write(path, "wb") as handle:
        handle.write(header.encode("ascii"))
        if fmt == "ascii":
            _write_ascii(handle, vertices, triangles)
        else:
            handle.write(vertices.tobytes())
            if triangles is not None:
                rows = np.empty(len(triangles), dtype=[("n", "u1"), ("v", f"{order}i4", (3,))])
                rows["n"] = 3
                rows["v"] = triangles
                handle.write(rows.tobytes())


def _format_header(fmt: str, fields: list[tuple[str, str]], n: int, n_faces: int | None) -> str:
    types = {"f4": "float", "u1": "uchar"}
    lines = ["ply", f"format {fmt} 1.0", "comment written by mvr3d", f"element vertex {n}"]
    lines += [f"property {types[t]} {name}" for name, t in fields]
    if n_faces is not None:
        lines += [f"element face {n_faces}", "property list uchar int vertex_indices"]
    return "\n".join([*lines, "end_header"]) + "\n"


def _write_ascii(handle: BinaryIO, vertices: np.ndarray, faces: np.ndarray | None) -> None:
    names = vertices.dtype.names
    formats = ["%d" if vertices.dtype[n].kind == "u" else "%.9g" for n in names]
    table = np.column_stack([vertices[n].astype(np.float64) for n in names])
    for chunk in format_rows(table, formats, " "):
        handle.write(chunk.encode("ascii"))
    if faces is not None and len(faces):
        table = np.column_stack([np.full(len(faces), 3), faces]).astype(np.float64)
        for chunk in format_rows(table, ["%d"] * 4, " "):
            handle.write(chunk.encode("ascii"))
