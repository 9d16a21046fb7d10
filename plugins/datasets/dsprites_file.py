"""The official dSprites file (``.npz`` or ``.hdf5``): found, checked, bit-packed, memory-mapped.

The release stores ``imgs`` (uint8 ``[737280, 64, 64]``, 0 or 1), ``latents_classes`` and
``latents_values`` (``[737280, 6]``: color, shape, scale, orientation, posX, posY) and, in the
``.npz``, a pickled ``metadata`` dict; the ``.hdf5`` keeps the latents as ``latents/classes``
and ``latents/values``. Loading it as uint8 takes 2.8 GB; here the images are streamed once,
eight pixels to a byte, into ``<file>.bits.npy`` beside the file (368 MB) and memory-mapped
from there on. Every load checks the keys, shapes, dtypes, factor metadata and that the
latents follow the official row order; any mismatch is a UsageError naming it.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import warnings
import zipfile
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from disentangle.errors import UsageError
from disentangle_plugins.datasets import stored

#: suffixes that make ``--data-dir`` name the file itself rather than a folder
SUFFIXES = (".npz", ".hdf5", ".h5")
#: the factor stored in column 0 of the latents, constant in dSprites
_COLOR = "color"
#: images streamed per chunk while packing (32 MB of uint8)
_CHUNK = 8192


def find(data_dir: Path, names: tuple[str, ...]) -> Path | None:
    """The official file in the data folder, or None when there is none (then the renderer
    draws the images). ``data_dir`` may name the file itself; then it must exist."""
    data_dir = Path(data_dir)
    if data_dir.suffix.lower() in SUFFIXES:  # .h5 too, which the official names do not use
        if not data_dir.is_file():
            raise UsageError(f"dSprites file {data_dir} does not exist")
        return data_dir
    return stored.find(data_dir, "dsprites", names, "dSprites")


def load(path: Path, factor_names: tuple[str, ...], factor_sizes: tuple[int, ...],
         values: tuple[np.ndarray, ...]) -> np.ndarray:
    """Check the official file at ``path`` against the factor grid and return its images
    bit-packed, uint8 ``[N, 64, 8]`` (``np.unpackbits(..., axis=-1)`` restores a row).

    The packed copy is cached beside the file and memory-mapped; where that folder is read-only
    it is built in memory instead (368 MB), with a warning.
    """
    path = Path(path)
    n = int(np.prod(factor_sizes))
    try:
        hdf5 = path.suffix.lower() in (".hdf5", ".h5")
        with _Hdf5Reader(path) if hdf5 else _NpzReader(path) as reader:
            _check_latents(path, reader, factor_sizes, values)
            metadata = reader.metadata()
            if metadata is not None:
                _check_metadata(path, metadata, factor_names, factor_sizes, values)
            shape, dtype = reader.image_info()
            if shape != (n, 64, 64) or dtype != np.uint8:
                raise UsageError(f"{path}: 'imgs' must be uint8 [{n}, 64, 64], "
                                 f"found {dtype} {list(shape)}")
            cache = path.with_name(path.name + ".bits.npy")
            if _cache_ok(cache, path, n):
                return np.load(cache, mmap_mode="r")
            return _pack(path, reader, n, cache)
    except (OSError, EOFError, ValueError, zlib.error, zipfile.BadZipFile) as exc:
        raise UsageError(f"{path}: cannot read the dSprites file ({exc})") from None


def _cache_ok(cache: Path, source: Path, n: int) -> bool:
    if not cache.is_file() or cache.stat().st_mtime_ns < source.stat().st_mtime_ns:
        return False
    try:
        packed = np.load(cache, mmap_mode="r")
    except (OSError, ValueError):
        return False
    return packed.shape == (n, 64, 8) and packed.dtype == np.uint8


def _pack(path: Path, reader: _Reader, n: int, cache: Path) -> np.ndarray:
    """Stream the images into a packed array (the cache file, written atomically)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{cache.name}.", suffix=".part", dir=cache.parent)
    except OSError:
        warnings.warn(f"{cache.parent} is read-only: dSprites images are packed in memory",
                      stacklevel=3)
        packed = np.empty((n, 64, 8), np.uint8)
        _fill(path, reader, packed)
        return packed
    os.close(fd)
    try:
        packed = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, 64, 8))
        _fill(path, reader, packed)
        packed.flush()
        del packed
        os.replace(tmp, cache)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return np.load(cache, mmap_mode="r")


def _fill(path: Path, reader: _Reader, packed: np.ndarray) -> None:
    done = 0
    for chunk in reader.image_chunks(_CHUNK):
        if chunk.max(initial=0) > 1:
            raise UsageError(f"{path}: 'imgs' must hold 0 or 1, found {int(chunk.max())} "
                             f"in rows {done}-{done + len(chunk) - 1}")
        packed[done:done + len(chunk)] = np.packbits(chunk, axis=-1)
        done += len(chunk)


def _check_latents(path: Path, reader: _Reader, factor_sizes: tuple[int, ...],
                   values: tuple[np.ndarray, ...]) -> None:
    """The latents must be the full grid in the official order, with the official values."""
    n = int(np.prod(factor_sizes))
    classes, real = reader.latents()
    for key, array, kind in (("latents_classes", classes, "iu"), ("latents_values", real, "f")):
        if array.shape != (n, 1 + len(factor_sizes)) or array.dtype.kind not in kind:
            raise UsageError(f"{path}: '{key}' must be a [{n}, {1 + len(factor_sizes)}] "
                             f"{'integer' if kind == 'iu' else 'float'} array, "
                             f"found {array.dtype} {list(array.shape)}")
    if (classes[:, 0] != 0).any() or not np.allclose(real[:, 0], 1.0):
        raise UsageError(f"{path}: the {_COLOR} latent must be constant (class 0, value 1)")
    expected = np.unravel_index(np.arange(n), factor_sizes)
    for k, (column, table) in enumerate(zip(expected, values)):
        bad = np.flatnonzero(classes[:, k + 1] != column)
        if bad.size:
            raise UsageError(f"{path}: 'latents_classes' are not in the official order "
                             f"(row {bad[0]}, column {k + 1})")
        if not np.allclose(real[:, k + 1], table[column], atol=1e-6):
            raise UsageError(f"{path}: 'latents_values' column {k + 1} differs from the "
                             "official factor values")


def _check_metadata(path: Path, metadata: Any, factor_names: tuple[str, ...],
                    factor_sizes: tuple[int, ...], values: tuple[np.ndarray, ...]) -> None:
    """The metadata dict must describe the same factors, sizes and values."""
    if not isinstance(metadata, dict):
        raise UsageError(f"{path}: 'metadata' must be a dict, found {type(metadata).__name__}")
    names = tuple(_text(name) for name in metadata.get("latents_names", ()))
    if names != (_COLOR,) + tuple(factor_names):
        raise UsageError(f"{path}: metadata latents_names {names} differ from "
                         f"{(_COLOR,) + tuple(factor_names)}")
    sizes = tuple(int(s) for s in np.asarray(metadata.get("latents_sizes", ())).ravel())
    if sizes != (1,) + tuple(factor_sizes):
        raise UsageError(f"{path}: metadata latents_sizes {sizes} differ from "
                         f"{(1,) + tuple(factor_sizes)}")
    possible = {_text(k): v for k, v in dict(metadata.get("latents_possible_values", {})).items()}
    for name, table in zip(factor_names, values):
        given = np.asarray(possible.get(name, ()), dtype=float)
        if given.shape != table.shape or not np.allclose(given, table, atol=1e-6):
            raise UsageError(f"{path}: metadata values of {name!r} differ from the official "
                             "factor values")


def _text(value: Any) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


class _Reader(ABC):
    """What the checks need from a file format."""

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def close(self) -> None:
        """Release the file."""

    @abstractmethod
    def latents(self) -> tuple[np.ndarray, np.ndarray]:
        """``(latents_classes, latents_values)``."""

    @abstractmethod
    def metadata(self) -> Any:
        """The metadata dict, or None where the format has none."""

    @abstractmethod
    def image_info(self) -> tuple[tuple[int, ...], np.dtype]:
        """Shape and dtype of ``imgs``."""

    @abstractmethod
    def image_chunks(self, rows: int) -> Iterator[np.ndarray]:
        """``imgs`` in consecutive chunks of ``rows`` images."""


class _NpzReader(_Reader):
    """An ``.npz`` (zip of ``.npy`` members) read member by member, never all at once."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.zip = zipfile.ZipFile(path)
        except zipfile.BadZipFile:
            raise UsageError(f"{path}: not an .npz archive (the file is corrupt or "
                             "truncated; download it again)") from None
        self.members = {Path(name).stem: name for name in self.zip.namelist()}
        missing = sorted({"imgs", "latents_classes", "latents_values", "metadata"}
                         - set(self.members))
        if missing:
            self.zip.close()
            raise UsageError(f"{path}: missing key(s) {', '.join(missing)} "
                             f"(found {', '.join(sorted(self.members)) or 'none'})")

    def close(self) -> None:
        self.zip.close()

    def _open(self, key: str) -> tuple[Any, tuple[int, ...], np.dtype]:
        stream = self.zip.open(self.members[key])
        version = np.lib.format.read_magic(stream)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(stream)
        if fortran:
            raise UsageError(f"{self.path}: '{key}' is stored in Fortran order")
        return stream, shape, dtype

    def _array(self, key: str) -> np.ndarray:
        stream, shape, dtype = self._open(key)
        with stream:
            count = int(np.prod(shape))
            data = stream.read(count * dtype.itemsize)
            if len(data) != count * dtype.itemsize:
                raise UsageError(f"{self.path}: '{key}' is truncated")
            return np.frombuffer(data, dtype).reshape(shape)

    def latents(self) -> tuple[np.ndarray, np.ndarray]:
        return self._array("latents_classes"), self._array("latents_values")

    def metadata(self) -> Any:
        stream, shape, dtype = self._open("metadata")
        with stream:
            if dtype.kind != "O" or shape != ():
                raise UsageError(f"{self.path}: 'metadata' must be a pickled dict, "
                                 f"found {dtype} {list(shape)}")
            try:
                array = _MetadataUnpickler(stream, encoding="latin1").load()
            except (pickle.UnpicklingError, AttributeError, ImportError, EOFError,
                    ValueError, TypeError) as exc:
                raise UsageError(f"{self.path}: unreadable 'metadata' ({exc})") from None
            except MemoryError:  # allowed numpy calls can still ask for an absurd array
                raise UsageError(f"{self.path}: its 'metadata' asks for more memory than "
                                 "this machine has; it is not dSprites' metadata") from None
            # an object .npy pickles the whole 0-d array; the dict is its one element
            return array[()] if isinstance(array, np.ndarray) and array.shape == () else array

    def image_info(self) -> tuple[tuple[int, ...], np.dtype]:
        stream, shape, dtype = self._open("imgs")
        stream.close()
        return shape, dtype

    def image_chunks(self, rows: int) -> Iterator[np.ndarray]:
        stream, shape, dtype = self._open("imgs")
        with stream:
            pixels = int(np.prod(shape[1:]))
            for start in range(0, shape[0], rows):
                count = min(rows, shape[0] - start)
                data = stream.read(count * pixels)
                if len(data) != count * pixels:
                    raise UsageError(f"{self.path}: 'imgs' is truncated after row {start}")
                yield np.frombuffer(data, np.uint8).reshape(count, *shape[1:])
            stream.read(1)  # reaching the end makes zipfile verify the member's CRC


class _MetadataUnpickler(pickle.Unpickler):
    """Unpickles the metadata dict, refusing anything but numpy arrays and plain values."""

    _ALLOWED = {("multiarray", "_reconstruct"), ("multiarray", "scalar"),
                ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str) -> Any:
        leaf = module.rsplit(".", 1)[-1]
        if module.split(".")[0] != "numpy" or (leaf, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if leaf == "multiarray":
            from numpy._core import multiarray

            return getattr(multiarray, name)
        return getattr(np, name)


class _Hdf5Reader(_Reader):
    """The ``.hdf5`` release, read through h5py (an optional dependency)."""

    def __init__(self, path: Path):
        try:
            import h5py
        except ImportError:
            raise UsageError(f"{path}: reading the .hdf5 release needs h5py "
                             "(pip install h5py), or use the .npz release") from None
        self.path = path
        try:
            self.file = h5py.File(path, "r")
        except OSError as exc:
            raise UsageError(f"{path}: not a readable HDF5 file ({exc})") from None
        keys = {"imgs", "latents/classes", "latents/values"}
        missing = sorted(key for key in keys if key not in self.file)
        if missing:
            self.file.close()
            raise UsageError(f"{path}: missing key(s) {', '.join(missing)}")

    def close(self) -> None:
        self.file.close()

    def latents(self) -> tuple[np.ndarray, np.ndarray]:
        return self.file["latents/classes"][()], self.file["latents/values"][()]

    def metadata(self) -> Any:
        return None

    def image_info(self) -> tuple[tuple[int, ...], np.dtype]:
        images = self.file["imgs"]
        return tuple(images.shape), images.dtype

    def image_chunks(self, rows: int) -> Iterator[np.ndarray]:
        images = self.file["imgs"]
        for start in range(0, images.shape[0], rows):
            yield images[start:start + rows]
