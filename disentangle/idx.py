"""Reading IDX files, the array format MNIST and Fashion-MNIST are distributed in.

An IDX file is a 4-byte magic number ``00 00 TT NN`` (TT the element type, NN the number of
dimensions), then NN big-endian uint32 sizes, then the elements in row-major order,
big-endian. Files ending in ``.gz`` are decompressed first. Every header field and the data
length are checked, so a wrong, corrupt or truncated file is reported by name instead of
turning into an oddly shaped array.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from disentangle.errors import UsageError

#: element type code (third magic byte) -> big-endian numpy dtype
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in the IDX file ``path`` (gzip-compressed when it ends in ``.gz``).

    The result has the file's shape and a native-endian dtype; single-byte arrays are a
    read-only view of the file's bytes (index them to get a writable copy). A file that is
    not valid IDX raises :class:`UsageError` naming the file and what is wrong with it.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as stream:
                raw = stream.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    return _parse(raw, path)


def _parse(raw: bytes, path: Path) -> np.ndarray:
    def fail(problem: str) -> UsageError:
        return UsageError(f"{path} is not a valid IDX file: {problem}")

    if len(raw) < 4:
        raise fail(f"{len(raw)} bytes, too short for the 4-byte magic number")
    if raw[0] != 0 or raw[1] != 0:
        raise fail(f"bad magic number 0x{raw[:4].hex()} (it must start with two zero bytes)")
    type_code, ndim = raw[2], raw[3]
    if type_code not in IDX_DTYPES:
        known = ", ".join(f"0x{code:02x}" for code in IDX_DTYPES)
        raise fail(f"unknown element type 0x{type_code:02x} (known: {known})")
    if ndim == 0:
        raise fail("zero dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise fail(f"truncated header: {ndim} dimensions need {header} bytes, "
                   f"the file has {len(raw)}")
    shape = tuple(int(size) for size in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(raw) - header
    if found < expected:
        raise fail(f"truncated: shape {list(shape)} needs {expected} data bytes, "
                   f"found {found}")
    if found > expected:
        raise fail(f"{found - expected} unexpected bytes after the data of shape {list(shape)}")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data if dtype.itemsize == 1 else data.astype(dtype.newbyteorder("="))
