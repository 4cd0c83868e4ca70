"""LZF (de)compression for PCD ``binary_compressed`` data.

The decompressor is pure Python (python-lzf is used instead when importable, for speed);
the compressor exists so tests can write ``binary_compressed`` files without PCL.
"""

from __future__ import annotations

try:  # optional C implementation (python-lzf)
    import lzf as _clzf
except ImportError:  # pragma: no cover - depends on the environment
    _clzf = None
if not (hasattr(_clzf, "compress") and hasattr(_clzf, "decompress")):
    _clzf = None  # e.g. an unrelated "lzf" folder picked up as a namespace package

__all__ = ["LZFError", "compress", "decompress"]

_MAX_LITERAL = 32
_MAX_OFFSET = 1 << 13
_MAX_MATCH = 264  # 2 + 7 + 255


class LZFError(ValueError):
    """The compressed stream is corrupt or does not decompress to the expected size."""


def decompress(data: bytes, expected_size: int) -> bytes:
    """Decompress ``data``; the result must be exactly ``expected_size`` bytes."""
    if expected_size == 0:
        if data:
            raise LZFError("compressed data present but 0 bytes expected")
        return b""
    if _clzf is not None:
        try:
            out = _clzf.decompress(bytes(data), expected_size)
        except ValueError as exc:
            raise LZFError(f"corrupt LZF stream ({exc})") from exc
        if out is None or len(out) != expected_size:
            raise LZFError(f"LZF stream does not decompress to {expected_size} bytes")
        return out
    return _decompress_py(memoryview(data).cast("B"), expected_size)


def _decompress_py(src: memoryview, expected_size: int) -> bytes:
    out = bytearray()
    ip, end = 0, len(src)
    while ip < end:
        ctrl = src[ip]
        ip += 1
        if ctrl < 32:  # literal run of ctrl + 1 bytes
            run = ctrl + 1
            if ip + run > end:
                raise LZFError("literal run past the end of the compressed data")
            out += src[ip : ip + run]
            ip += run
        else:  # back reference
            length = ctrl >> 5
            if length == 7:
                if ip >= end:
                    raise LZFError("back reference past the end of the compressed data")
                length += src[ip]
                ip += 1
            if ip >= end:
                raise LZFError("back reference past the end of the compressed data")
            ref = len(out) - ((ctrl & 0x1F) << 8) - src[ip] - 1
            ip += 1
            length += 2
            if ref < 0:
                raise LZFError("back reference before the start of the output")
            distance = len(out) - ref
            if length <= distance:
                out += out[ref : ref + length]
            else:  # overlapping copy repeats the last `distance` bytes
                pattern = out[ref:]
                reps, rest = divmod(length, distance)
                out += pattern * reps + pattern[:rest]
        if len(out) > expected_size:
            raise LZFError(f"LZF stream decompresses to more than {expected_size} bytes")
    if len(out) != expected_size:
        raise LZFError(f"LZF stream decompresses to {len(out)} bytes, expected {expected_size}")
    return bytes(out)


def compress(data: bytes) -> bytes:
    """Greedy LZF compression (hash of 3 bytes -> last position); slow, for tests."""
    data = bytes(data)
    if _clzf is not None and data:
        out = _clzf.compress(data, len(data) + len(data) // 16 + 64)
        if out is not None:
            return out
    n = len(data)
    out = bytearray()
    literal = bytearray()
    table: dict[bytes, int] = {}
    ip = 0

    def flush() -> None:
        for start in range(0, len(literal), _MAX_LITERAL):
            chunk = literal[start : start + _MAX_LITERAL]
            out.append(len(chunk) - 1)
            out.extend(chunk)
        literal.clear()

    while ip < n:
        key = data[ip : ip + 3]
        ref = table.get(key, -1) if len(key) == 3 else -1
        if len(key) == 3:
            table[key] = ip
        if ref >= 0 and ip - ref <= _MAX_OFFSET:
            length = 3
            limit = min(_MAX_MATCH, n - ip)
            while length < limit and data[ref + length] == data[ip + length]:
                length += 1
            flush()
            offset = ip - ref - 1
            code = length - 2
            if code < 7:
                out.append((code << 5) | (offset >> 8))
            else:
                out.append((7 << 5) | (offset >> 8))
                out.append(code - 7)
            out.append(offset & 0xFF)
            ip += length
        else:
            literal.append(data[ip])
            ip += 1
    flush()
    return bytes(out)
