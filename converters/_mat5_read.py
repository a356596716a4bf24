"""A reader for MAT-file level 5 (MATLAB -v6 and -v7) into the neutral representation.

Why not ``scipy.io.loadmat``: it drops the logical flag (logicals come back uint8),
cannot tell an empty struct array from an empty cell, and turns a field-less 1x1
struct into ``None``. The format is small (MathWorks "MAT-File Format", level 5):

* 128-byte header (text, subsystem offset, version 0x0100, endian indicator ``IM``/``MI``);
* then data elements ``[type uint32][nbytes uint32][data, padded to 8]`` or, when the
  data fit in 4 bytes, the "small element" ``[nbytes uint16 | type uint16][4 bytes]``;
* a top-level ``miCOMPRESSED`` element holds one zlib-compressed ``miMATRIX`` (-v7);
* an ``miMATRIX`` is: array flags (class, logical/complex bits), dims, name, then the
  class's contents (numeric real/imag parts; char data; cell elements; struct field
  names then element-major field values; ...).

Each top-level variable is decompressed and decoded when it is reached, one at a time.
"""
from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from .mattypes import MatCell, MatOpaque, MatStructArray

miINT8, miUINT8, miINT16, miUINT16, miINT32, miUINT32 = 1, 2, 3, 4, 5, 6
miSINGLE, miDOUBLE, miINT64, miUINT64 = 7, 9, 12, 13
miMATRIX, miCOMPRESSED, miUTF8, miUTF16, miUTF32 = 14, 15, 16, 17, 18

_MI_DTYPES = {miINT8: "i1", miUINT8: "u1", miINT16: "i2", miUINT16: "u2", miINT32: "i4",
              miUINT32: "u4", miSINGLE: "f4", miDOUBLE: "f8", miINT64: "i8", miUINT64: "u8",
              miUTF8: "u1", miUTF16: "u2", miUTF32: "u4"}

mxCELL, mxSTRUCT, mxOBJECT, mxCHAR, mxSPARSE = 1, 2, 3, 4, 5
mxFUNCTION, mxOPAQUE = 16, 17
_MX_DTYPES = {6: "f8", 7: "f4", 8: "i1", 9: "u1", 10: "i2", 11: "u2", 12: "i4", 13: "u4",
              14: "i8", 15: "u8"}


class Mat5FormatError(Exception):
    """Internal: the byte stream does not follow the level-5 layout (message says where)."""


#: numeric arrays at least this big are returned as views into a writable decompressed
#: buffer instead of copies (smaller ones are copied so they do not pin the buffer)
ZERO_COPY_MIN_BYTES = 1 << 16
#: compressed bytes read from the file per step when inflating a variable
INFLATE_CHUNK = 1 << 24


class _Reader:
    def __init__(self, buf: bytes | bytearray | memoryview, endian: str, zero_copy: bool = False):
        self.buf = memoryview(buf)
        self.e = endian
        self.zero_copy = zero_copy
        self.cursor = 0  # position after the last element read (see matrix())

    # ------------------------------------------------------------------ elements
    def tag(self, pos: int) -> tuple[int, int, int, int]:
        """(type, nbytes, data start, position after the element) of the element at pos."""
        if pos + 8 > len(self.buf):
            raise Mat5FormatError(f"data element header at byte {pos} runs past the end")
        first = int(np.frombuffer(self.buf, self.e + "u4", 1, pos)[0])
        if first >> 16:  # small data element: nbytes in the high half, type in the low
            return first & 0xFFFF, first >> 16, pos + 4, pos + 8
        nbytes = int(np.frombuffer(self.buf, self.e + "u4", 1, pos + 4)[0])
        end = pos + 8 + nbytes
        if end > len(self.buf) and first == miMATRIX and end - len(self.buf) < 8:
            end = len(self.buf)  # Octave counts the last sub-element's padding it does not write
        if end > len(self.buf):
            raise Mat5FormatError(f"data element at byte {pos} ({nbytes} bytes) runs past the end")
        if first == miCOMPRESSED:
            return first, nbytes, pos + 8, end
        return first, end - pos - 8, pos + 8, min(end + (-(end - pos) % 8), len(self.buf))

    def data(self, pos: int) -> tuple[np.ndarray, int, int]:
        """(values as a 1-D array of the element's own type, type, next position)."""
        mtype, nbytes, start, nxt = self.tag(pos)
        if mtype not in _MI_DTYPES:
            raise Mat5FormatError(f"unexpected data type {mtype} at byte {pos}")
        dt = np.dtype(_MI_DTYPES[mtype]).newbyteorder(self.e)
        self.cursor = nxt
        if nbytes % dt.itemsize:
            raise Mat5FormatError(f"element at byte {pos}: {nbytes} bytes is not a whole number of values")
        return np.frombuffer(self.buf, dt, nbytes // dt.itemsize, start), mtype, nxt

    def string(self, pos: int) -> tuple[str, int]:
        arr, _, nxt = self.data(pos)
        return bytes(arr.astype(np.uint8)).split(b"\0", 1)[0].decode("latin-1"), nxt

    # ------------------------------------------------------------------ matrices
    def element(self, pos: int) -> tuple[str, Any, int]:
        """Decode the miMATRIX (or miCOMPRESSED) element at pos: (name, value, next pos)."""
        mtype, nbytes, start, nxt = self.tag(pos)
        if mtype == miCOMPRESSED:
            try:
                raw = zlib.decompressobj().decompress(self.buf[start:start + nbytes])
            except zlib.error as exc:
                raise Mat5FormatError(f"compressed element at byte {pos} is corrupt ({exc})") from exc
            inner = _Reader(raw, self.e)
            name, value, _ = inner.element(0)
            return name, value, nxt
        if mtype != miMATRIX:
            raise Mat5FormatError(f"expected a matrix element at byte {pos}, found type {mtype}")
        if nbytes == 0:  # an empty cell element / field
            return "", np.zeros((0, 0)), nxt
        name, value, parsed_end = self.matrix(start, start + nbytes)
        if parsed_end is not None and parsed_end < nxt:
            # Octave over-counts some miMATRIX sizes (a small sub-element counted as
            # 8 + n bytes): the sub-elements themselves say where the matrix ends.
            nxt = parsed_end
        self.cursor = nxt
        return name, value, nxt

    def matrix(self, pos: int, end: int) -> tuple[str, Any, int | None]:
        """(name, value, position after the parsed content or None when it was skipped)."""
        name, value = self._matrix(pos, end)
        skipped = isinstance(value, MatOpaque)
        return name, value, None if skipped else self.cursor

    def _matrix(self, pos: int, end: int) -> tuple[str, Any]:
        flags, _, pos = self.data(pos)
        cls = int(flags[0]) & 0xFF
        is_logical = bool(int(flags[0]) & 0x200)
        is_complex = bool(int(flags[0]) & 0x800)
        if cls == mxOPAQUE:  # no dims: name, type system, class name, then data
            name, pos = self.string(pos)
            return name, self._opaque(pos, end)
        dims_arr, _, pos = self.data(pos)
        dims = tuple(int(d) for d in dims_arr)
        name, pos = self.string(pos)
        numel = int(np.prod(dims)) if dims else 0
        if cls in _MX_DTYPES:
            return name, self._numeric(pos, dims, cls, is_logical, is_complex)
        if cls == mxCHAR:
            return name, self._char(pos, dims)
        if cls == mxCELL:
            items = []
            for _ in range(numel):
                _, value, pos = self.element(pos)
                items.append(value)
            return name, MatCell(items, shape=dims)
        if cls == mxSTRUCT:
            return name, self._struct(pos, dims, numel)
        if cls == mxOBJECT:
            classname, pos = self.string(pos)
            return name, MatOpaque("object", classname)
        if cls == mxSPARSE:
            return name, self._sparse(pos, dims, is_logical, is_complex)
        if cls == mxFUNCTION:
            return name, MatOpaque("function_handle", self._function_info(pos, end))
        return name, MatOpaque("unknown", f"MATLAB class id {cls}")

    def _numeric(self, pos: int, dims: tuple, cls: int, is_logical: bool, is_complex: bool) -> np.ndarray:
        real, _, pos = self.data(pos)
        target = np.dtype(bool) if is_logical else np.dtype(_MX_DTYPES[cls])
        if is_complex:
            imag, _, _ = self.data(pos)
            ctype = np.complex64 if target == np.float32 else np.complex128
            values = real.astype(ctype) + 1j * imag.astype(ctype)
        elif (self.zero_copy and real.dtype == target and real.dtype.isnative
              and real.nbytes >= ZERO_COPY_MIN_BYTES and real.flags.writeable):
            # big arrays stored in their own class: a view into the decompressed buffer
            # (no copy; the buffer is owned by these views and freed with the last one)
            return _shaped(real, dims)
        else:
            values = real.astype(target.newbyteorder("="))  # a fresh array: no second copy
        return _shaped(values, dims)

    def _char(self, pos: int, dims: tuple) -> str | list[str]:
        arr, mtype, _ = self.data(pos)
        if mtype == miUTF8:
            text = bytes(arr).decode("utf-8", errors="replace")
            codes = np.array([ord(c) for c in text], dtype=np.uint32)
        elif mtype == miUTF16:
            codes = np.array([ord(c) for c in arr.astype("<u2").tobytes().decode("utf-16-le", errors="replace")],
                             dtype=np.uint32)
        else:
            codes = arr.astype(np.uint32)
        return chars_to_python(codes, dims)

    def _struct(self, pos: int, dims: tuple, numel: int) -> dict | MatStructArray:
        lens, _, pos = self.data(pos)
        flen = int(lens[0]) if len(lens) else 0
        raw, _, pos = self.data(pos)
        raw = bytes(raw.astype(np.uint8))
        fields = [] if flen == 0 else [
            raw[i:i + flen].split(b"\0", 1)[0].decode("latin-1") for i in range(0, len(raw), flen)]
        items = []
        for _ in range(numel):
            item = {}
            for f in fields:
                _, value, pos = self.element(pos)
                item[f] = value
            items.append(item)
        if numel == 1:
            return items[0]
        return MatStructArray(items, shape=dims, fields=fields)

    def _sparse(self, pos: int, dims: tuple, is_logical: bool, is_complex: bool) -> np.ndarray:
        ir, _, pos = self.data(pos)
        jc, _, pos = self.data(pos)
        pr, _, pos = self.data(pos)
        dense = np.zeros(dims, dtype=bool if is_logical else (np.complex128 if is_complex else np.float64))
        values = pr.astype(dense.dtype)
        if is_complex:
            pi, _, _ = self.data(pos)
            values = values + 1j * pi.astype(np.float64)
        for col in range(dims[1]):
            for k in range(int(jc[col]), int(jc[col + 1])):
                dense[int(ir[k]), col] = values[k]
        return dense

    def _opaque(self, pos: int, end: int) -> MatOpaque:
        try:
            system, pos = self.string(pos)
            classname, pos = self.string(pos)
            return MatOpaque("object", f"{classname} ({system})")
        except Mat5FormatError:
            return MatOpaque("object", "undecodable opaque object")

    def _function_info(self, pos: int, end: int) -> str:
        """The handle's function name if its workspace struct shows one (best effort)."""
        try:
            _, inner, _ = self.element(pos)
            for v in _walk(inner):
                if isinstance(v, dict) and isinstance(v.get("function"), str):
                    return v["function"]
        except Exception:  # tolerate anything: the handle itself is never used
            pass
        return "function handle"


def _walk(value: Any):
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


def _shaped(values: np.ndarray, dims: tuple) -> np.ndarray:
    """1-D column-major values -> MATLAB-shaped array: a Fortran-ordered VIEW of
    ``values`` (callers pass a fresh copy, or a view they mean to share)."""
    if len(dims) < 2:
        dims = tuple(dims) + (1,) * (2 - len(dims))
    if values.size != int(np.prod(dims)):
        raise Mat5FormatError(f"array of size {dims} holds {values.size} values")
    return np.ascontiguousarray(values).reshape(dims, order="F")


def chars_to_python(codes: np.ndarray, dims: tuple) -> str | list[str]:
    """MATLAB char data (code points, column-major, shape ``dims``) -> str / list of str."""
    dims = tuple(dims) + (1,) * (2 - len(dims))
    rows = int(dims[0])
    cols = int(np.prod(dims[1:]))
    if rows * cols == 0:
        return "" if rows <= 1 else [""] * rows
    codes = np.asarray(codes).reshape(-1)
    if codes.size < rows * cols:
        codes = np.concatenate([codes, np.zeros(rows * cols - codes.size, dtype=codes.dtype)])
    grid = codes[: rows * cols].reshape((rows, cols), order="F")
    lines = ["".join(chr(int(c)) for c in row) for row in grid]
    return lines[0] if rows == 1 else lines


def header_endian(head: bytes | memoryview) -> str:
    """Byte order from the 128-byte MAT header (``IM``: little, ``MI``: big endian)."""
    if len(head) < 128:
        raise Mat5FormatError("file is shorter than the 128-byte MAT header")
    indicator = bytes(head[126:128])
    if indicator == b"IM":
        return "<"
    if indicator == b"MI":
        return ">"
    raise Mat5FormatError("no MAT-file endian indicator in the header")


def read_mat5(buf: bytes | memoryview) -> dict[str, Any]:
    """Decode a whole level-5 MAT file held in ``buf``; raises Mat5FormatError."""
    endian = header_endian(buf[:128])
    reader = _Reader(buf, endian)
    out: dict[str, Any] = {}
    pos = 128
    while pos < len(reader.buf):
        if len(reader.buf) - pos < 8 and not any(bytes(reader.buf[pos:])):
            break  # trailing padding
        name, value, pos = reader.element(pos)
        if name and not name.startswith("__"):
            out[name] = value
    return out


def _inflate_to_buffer(fh, nbytes: int, where: int, endian: str) -> bytearray:
    """Inflate the ``nbytes`` compressed bytes at the file position into ONE writable
    buffer sized from the inner miMATRIX tag (its first 8 bytes), reading the file
    INFLATE_CHUNK bytes at a time: peak memory = the inflated variable + one chunk."""
    d = zlib.decompressobj()
    out: bytearray | None = None
    filled = 0
    pending = b""
    left = nbytes
    try:
        while left > 0 and not d.eof:
            chunk = fh.read(min(INFLATE_CHUNK, left))
            if not chunk:
                raise Mat5FormatError(f"compressed element at byte {where} is truncated")
            left -= len(chunk)
            piece = d.decompress(chunk)
            if out is None:
                pending += piece
                if len(pending) < 8:
                    continue
                # the inner element's own size; Octave may be a few bytes off, so allow slack
                inner = int(np.frombuffer(pending[4:8], endian + "u4")[0]) + 8
                inner = min(inner, 1032 * nbytes + 1024)  # zlib cannot expand more: a corrupt size
                out = bytearray(max(inner, len(pending)))
                piece, pending = pending, b""
            if filled + len(piece) > len(out):
                out.extend(b"\0" * (filled + len(piece) - len(out)))
            out[filled:filled + len(piece)] = piece
            filled += len(piece)
        tail = d.flush()
        if tail and out is not None:
            if filled + len(tail) > len(out):
                out.extend(b"\0" * (filled + len(tail) - len(out)))
            out[filled:filled + len(tail)] = tail
            filled += len(tail)
    except zlib.error as exc:
        raise Mat5FormatError(f"compressed element at byte {where} is corrupt ({exc})") from exc
    if out is None:
        out = bytearray(pending)
        filled = len(pending)
    if filled < len(out):
        del out[filled:]
    if left > 0:
        fh.seek(left, 1)
    return out


def read_mat5_file(fh) -> dict[str, Any]:
    """Like :func:`read_mat5`, reading from an open binary file one top-level variable
    at a time: a compressed (-v7) variable is inflated chunk by chunk into a writable
    buffer, an uncompressed (-v6) one read into its own buffer; big numeric arrays are
    views into that buffer (no second copy)."""
    endian = header_endian(fh.read(128))
    out: dict[str, Any] = {}
    pos = 128
    while True:
        tag = fh.read(8)
        if len(tag) < 8:
            if tag and any(tag):
                raise Mat5FormatError(f"data element header at byte {pos} runs past the end")
            break
        mtype, nbytes = (int(x) for x in np.frombuffer(tag, endian + "u4", 2))
        if mtype >> 16:
            raise Mat5FormatError(f"unexpected small data element at byte {pos}")
        if mtype == miCOMPRESSED:
            buf = _inflate_to_buffer(fh, nbytes, pos, endian)
            nxt = pos + 8 + nbytes
        elif mtype == miMATRIX:
            buf = bytearray(8 + nbytes)
            buf[:8] = tag
            got = fh.readinto(memoryview(buf)[8:])
            if got < nbytes:
                if nbytes - got < 8:  # Octave counts padding it does not write
                    del buf[8 + got:]
                else:
                    raise Mat5FormatError(f"data element at byte {pos} ({nbytes} bytes) runs past the end")
            nxt = None  # known once parsed (Octave over-counts some sizes)
        else:
            raise Mat5FormatError(f"expected a matrix element at byte {pos}, found type {mtype}")
        reader = _Reader(buf, endian, zero_copy=True)
        del buf
        name, value, rel_next = reader.element(0)
        del reader
        if nxt is None:
            nxt = pos + rel_next
            fh.seek(nxt)
        if name and not name.startswith("__"):
            out[name] = value
        pos = nxt
    return out
