"""Datasets whose images are one array in official files: found, checked, and read by rows.

A :class:`StoredGrid` is a factor grid whose images sit in an array ``[N, H, W, C]`` (uint8)
in row-major factor order (the last factor varies fastest), as Shapes3D and MPI3D ship them
and as smallNORB and Cars3D are cached here once resized. The array is never loaded whole:
an uncompressed ``.npz`` member or an ``.npy`` file is read by rows where it lies, a
compressed member is unpacked once, in chunks, into an ``.npy`` beside the archive, and an
HDF5 dataset is read by rows. A batch then reads only its own rows.

Every failed check raises a UsageError (one line, exit code 2) naming the file and what is
wrong with it; a missing file names the command that downloads it and where it belongs.
"""

from __future__ import annotations

import os
import struct
import tempfile
import zipfile
import zlib
from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from disentangle.datasets import FactorDataset
from disentangle.errors import UsageError

#: rows unpacked per chunk when a compressed member is cached (64 MB of 64x64 RGB)
CHUNK_ROWS = 5000
#: the fixed part of a zip local file header: signature, versions, flags, method, times,
#: CRC, sizes, name length, extra length
_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")


def find(data_dir: Path, folder: str, names: tuple[str, ...], what: str) -> Path | None:
    """The dataset file: ``data_dir`` itself when it names a file of one of ``names``'
    suffixes (it must exist), else the first of ``names`` found in ``data_dir/folder`` or
    ``data_dir``; None when there is none."""
    data_dir = Path(data_dir)
    suffixes = {Path(n).suffix.lower() for n in names}
    if data_dir.suffix.lower() in suffixes:
        if not data_dir.is_file():
            raise UsageError(f"{what} file {data_dir} does not exist")
        return data_dir
    for place in (data_dir / folder, data_dir):
        for name in names:
            if (place / name).is_file():
                return place / name
    return None


def missing(dataset: str, data_dir: Path, folder: str, name: str) -> UsageError:
    """The one-line error for a dataset file that is not there."""
    return UsageError(f"dataset {dataset!r} needs {Path(data_dir) / folder / name}: download "
                      f"it with `disentangle data fetch {dataset} --data-dir {data_dir}` "
                      f"(or point --data-dir at the file)")


def _npy_header(stream: Any, where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        version = np.lib.format.read_magic(stream)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read(stream)
    except ValueError as exc:
        raise UsageError(f"{where} is not an .npy array ({exc})") from None
    if dtype.hasobject:
        raise UsageError(f"{where} holds pickled Python objects, not an array of numbers; "
                         "it is not loaded (unpickling can run code)")
    return tuple(shape), fortran, dtype


def check_array(where: str, shape: tuple[int, ...], dtype: np.dtype,
                expected: tuple[int, ...], expected_dtype: str) -> None:
    """Shape and dtype as the official file has them."""
    if tuple(shape) != tuple(expected) or np.dtype(dtype) != np.dtype(expected_dtype):
        raise UsageError(f"{where} must be {expected_dtype} {list(expected)}, found "
                         f"{np.dtype(dtype)} {list(shape)}")


def npz_member(path: Path, key: str, shape: tuple[int, ...], dtype: str) -> RowFile:
    """Array ``key`` of the ``.npz`` at ``path``, checked to be ``dtype`` ``shape``, read by
    rows where it lies in the archive when the member is stored uncompressed, else from
    ``<file>.<key>.npy`` beside it, unpacked once in chunks."""
    where = f"{path}: {key!r}"
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise UsageError(f"{path}: not an .npz archive (the file is corrupt or truncated; "
                         "download it again)") from None
    with archive:
        members = {Path(n).stem: n for n in archive.namelist()}
        if key not in members:
            raise UsageError(f"{path}: no array {key!r} (found "
                             f"{', '.join(sorted(members)) or 'nothing'})")
        info = archive.getinfo(members[key])
        with archive.open(info) as stream:
            found, fortran, found_dtype = _npy_header(stream, where)
            check_array(where, found, found_dtype, shape, dtype)
            if fortran:
                raise UsageError(f"{where} is stored in Fortran order, not as numpy writes "
                                 "the official file")
            if info.compress_type == zipfile.ZIP_STORED:
                return _stored_member(path, info, stream.tell(), shape, np.dtype(dtype))
            return _unpacked(path, key, stream, shape, np.dtype(dtype))


def _stored_member(path: Path, info: zipfile.ZipInfo, header: int, shape: tuple[int, ...],
                   dtype: np.dtype) -> RowFile:
    with open(path, "rb") as file:
        file.seek(info.header_offset)
        fields = _LOCAL_HEADER.unpack(file.read(_LOCAL_HEADER.size))
    offset = info.header_offset + _LOCAL_HEADER.size + fields[9] + fields[10] + header
    return RowFile(path, offset, shape, dtype)


def _unpacked(path: Path, key: str, stream: Any, shape: tuple[int, ...],
              dtype: np.dtype) -> RowFile:
    cache = path.with_name(f"{path.name}.{key}.npy")
    cached = cache_fresh(cache, [path], shape, dtype)
    if cached is not None:
        return cached
    return write_cache(cache, shape, dtype, _chunks(path, key, stream, shape, dtype))


def _chunks(path: Path, key: str, stream: Any, shape: tuple[int, ...], dtype: np.dtype):
    row_bytes = int(np.prod(shape[1:])) * dtype.itemsize
    try:
        for start in range(0, shape[0], CHUNK_ROWS):
            count = min(CHUNK_ROWS, shape[0] - start)
            data = stream.read(count * row_bytes)
            if len(data) != count * row_bytes:
                raise UsageError(f"{path}: {key!r} is truncated after row {start}")
            yield np.frombuffer(data, dtype).reshape(count, *shape[1:])
        stream.read(1)  # the end of the member: zipfile checks its CRC
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise UsageError(f"{path}: {key!r} cannot be read ({exc}); download it again"
                         ) from None


def write_cache(cache: Path, shape: tuple[int, ...], dtype: np.dtype, chunks: Any
                ) -> RowFile:
    """Write consecutive row chunks as the ``.npy`` file ``cache`` (atomically: a cut
    write leaves no cache; streamed: memory holds one chunk) and return its rows."""
    fd, tmp = tempfile.mkstemp(prefix=f".{cache.name}.", suffix=".part", dir=cache.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            np.lib.format.write_array_header_1_0(out, {
                "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                "fortran_order": False, "shape": tuple(shape)})
            done = 0
            for chunk in chunks:
                out.write(np.ascontiguousarray(chunk, dtype=dtype).tobytes())
                done += len(chunk)
        if done != shape[0]:
            raise UsageError(f"{cache}: {done} rows were made, not {shape[0]}")
        os.replace(tmp, cache)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return npy_rows(cache)


def hdf5_datasets(path: Path, expected: dict[str, tuple[tuple[int, ...], str]]
                  ) -> tuple[Any, dict[str, Any]]:
    """The open HDF5 file and its datasets, which must be exactly ``expected`` (name ->
    (shape, dtype)): a missing, extra or differently shaped dataset is refused."""
    try:
        import h5py
    except ImportError:
        raise UsageError(f"{path}: reading HDF5 files needs h5py (pip install "
                         "'disentangle-bench[hdf5]' or pip install h5py)") from None
    try:
        file = h5py.File(path, "r")
    except OSError as exc:
        raise UsageError(f"{path}: not a readable HDF5 file ({exc}; download it again)"
                         ) from None
    found: list[str] = []
    file.visititems(lambda name, item: found.append(name)
                    if isinstance(item, h5py.Dataset) else None)
    extra, absent = sorted(set(found) - set(expected)), sorted(set(expected) - set(found))
    if extra or absent:
        file.close()
        raise UsageError(f"{path}: expected the datasets {', '.join(sorted(expected))}; "
                         + "; ".join(part for part in (
                             f"missing {', '.join(absent)}" if absent else "",
                             f"unexpected {', '.join(extra)}" if extra else "") if part))
    for name, (shape, dtype) in expected.items():
        try:
            check_array(f"{path}: {name!r}", file[name].shape, file[name].dtype, shape, dtype)
        except UsageError:
            file.close()
            raise
    return file, {name: file[name] for name in expected}


def read_rows(array: Any, rows: np.ndarray) -> np.ndarray:
    """``array[rows]`` for any row order and repeats, from a :class:`RowFile` or an HDF5
    dataset (which reads increasing unique rows only)."""
    unique, inverse = np.unique(rows, return_inverse=True)
    try:
        return np.asarray(array[unique])[inverse]
    except OSError as exc:  # a file cut after it was checked
        raise UsageError(f"cannot read image rows from the dataset file ({exc})") from None


class RowFile:
    """The rows of a C-order array stored in a file from ``offset`` on, read on demand.

    Each read takes exactly the rows asked for (one positioned read per row), so memory holds
    only them. A memory map is not used: the pages the kernel reads ahead around each row
    stay mapped into the process, and a random walk over a 12.7 GB file then keeps
    gigabytes resident.
    """

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...], dtype: np.dtype):
        self.path, self.offset, self.shape = Path(path), offset, tuple(shape)
        self.dtype = np.dtype(dtype)
        self.row_bytes = int(np.prod(self.shape[1:])) * self.dtype.itemsize
        needed = offset + self.shape[0] * self.row_bytes
        if self.path.stat().st_size < needed:
            raise UsageError(f"{path}: truncated ({self.path.stat().st_size:,} bytes, the "
                             f"array needs {needed:,}; download it again)")
        self.fd = os.open(self.path, os.O_RDONLY)
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_RANDOM)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), *self.shape[1:]), self.dtype)
        for k, row in enumerate(rows):
            if os.preadv(self.fd, [out[k]], self.offset + int(row) * self.row_bytes) \
                    != self.row_bytes:
                raise UsageError(f"{self.path}: row {int(row)} cannot be read (the file was "
                                 "cut after it was checked)")
        return out

    def __del__(self) -> None:
        if getattr(self, "fd", None) is not None:
            os.close(self.fd)
            self.fd = None


def npy_rows(path: Path) -> RowFile:
    """An ``.npy`` file's array as a :class:`RowFile` (C order, numbers only)."""
    with open(path, "rb") as file:
        shape, fortran, dtype = _npy_header(file, str(path))
        offset = file.tell()
    if fortran:
        raise UsageError(f"{path} is stored in Fortran order")
    return RowFile(path, offset, shape, dtype)


def to_images(pixels: np.ndarray) -> torch.Tensor:
    """uint8 ``[n, H, W, C]`` as float ``[n, C, H, W]`` in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float().div_(255)


class StoredGrid(FactorDataset):
    """A factor grid whose images are rows of one array read from its files.

    Subclasses set ``file_names`` (the first is what ``disentangle data fetch`` writes),
    ``folder`` (their folder in the data folder) and implement :meth:`open`, which checks the
    file and returns the ``[N, H, W, C]`` uint8 array in grid order.
    """

    file_names: ClassVar[tuple[str, ...]]
    folder: ClassVar[str]

    def __init__(self, data_dir: str | Path | None = None):
        super().__init__(data_dir)
        #: the file (or folder of files) the images are read from
        self.path = self.locate()
        self.array = self.open(self.path)

    def locate(self) -> Path:
        """The dataset's file in the data folder (see :func:`find`); a UsageError naming the
        fetch command when it is not there."""
        path = find(self.data_dir, self.folder, self.file_names, self.name)
        if path is None:
            raise missing(self.name, self.data_dir, self.folder, self.file_names[0])
        return path

    @abstractmethod
    def open(self, path: Path) -> Any:
        """Check the file at ``path`` (what :meth:`locate` found); return its images
        ``[N, H, W, C]`` uint8 (a :class:`RowFile` or an HDF5 dataset)."""

    def rows(self, factors: np.ndarray) -> np.ndarray:
        """The array rows of factor rows ``[n, K]`` (the grid index, unless the array is
        stored in another order)."""
        return self.index(factors)

    def images(self, factors: np.ndarray, rng: np.random.Generator | None = None
               ) -> torch.Tensor:
        return to_images(read_rows(self.array, self.rows(self.check_factors(factors))))


def cache_fresh(cache: Path, sources: list[Path], shape: tuple[int, ...],
                dtype: np.dtype | str = "uint8") -> RowFile | None:
    """The rows of the cache made from ``sources``, if it is there, newer than every source
    and of ``dtype`` ``shape``; else None."""
    if not cache.is_file():
        return None
    if cache.stat().st_mtime_ns < max(source.stat().st_mtime_ns for source in sources):
        return None
    try:
        rows = npy_rows(cache)
    except (OSError, UsageError):
        return None
    return rows if rows.shape == tuple(shape) and rows.dtype == np.dtype(dtype) else None


def resized(images: np.ndarray, size: int = 64) -> np.ndarray:
    """uint8 images ``[n, H, W]`` or ``[n, H, W, C]`` resized to ``size`` x ``size`` with
    Lanczos resampling (Pillow's ``ANTIALIAS``, as the reference code resizes them)."""
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(image).resize((size, size), Image.LANCZOS))
                     for image in images])
