"""smallNORB (LeCun et al. 2004): grey photographs of 50 toys, 5 categories of 10 instances,
each under 9 elevations, 18 azimuths and 6 lightings, by a stereo camera.

The official release is six files in the NORB binary matrix format, a training and a testing
set of 24,300 stereo pairs each (the training set holds instances 4, 6, 7, 8, 9 of every
category, the testing set 0, 1, 2, 3, 5), usually gzipped:

* ``...-dat.mat``: uint8 ``[24300, 2, 96, 96]`` (the two images of each pair);
* ``...-cat.mat``: int32 ``[24300]``, the category (0-4);
* ``...-info.mat``: int32 ``[24300, 4]``: instance (0-9), elevation (0-8), azimuth (0, 2,
  ..., 34, in steps of 20 degrees) and lighting (0-5).

A matrix file starts with its type's magic number (0x1E3D4C55 for bytes, 0x1E3D4C54 for
int32), then its number of dimensions and the dimensions, at least three (unused ones are
1), all little-endian int32; the array follows.

Factors are the reference study's (disentanglement_lib's ``SmallNORB``): category (5),
elevation (9), azimuth (18) and lighting (6). The instance is not a factor: each combination
has 10 images, one per instance, and a draw picks one at random. As there, both sets are
used, the first image of each pair only, resized to 64x64 with Lanczos resampling. The
resized images are cached once beside the files (``smallnorb-64x64.npy``, 199 MB) and
read by rows from there.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from disentangle import hookimpl
from disentangle.datasets import FactorDataset
from disentangle.download import fetch_file
from disentangle.errors import UsageError
from disentangle_plugins.datasets import stored

BASE = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/"
PREFIXES = ("smallnorb-5x46789x9x18x6x2x96x96-training",
            "smallnorb-5x01235x9x18x6x2x96x96-testing")
#: the MD5 of each gzipped file (as disent lists them)
MD5 = {f"{PREFIXES[0]}-dat.mat.gz": "66054832f9accfe74a0f4c36a75bc0a2",
       f"{PREFIXES[0]}-cat.mat.gz": "23c8b86101fbf0904a000b43d3ed2fd9",
       f"{PREFIXES[0]}-info.mat.gz": "51dee1210a742582ff607dfd94e332e3",
       f"{PREFIXES[1]}-dat.mat.gz": "e4ad715691ed5a3a5f138751a4ceb071",
       f"{PREFIXES[1]}-cat.mat.gz": "5aa791cd7e6016cf957ce9bdb93b8603",
       f"{PREFIXES[1]}-info.mat.gz": "a9454f3864d7fd4bb3ea7fc3eb84924e"}
MAGIC = {0x1E3D4C55: np.dtype("<u1"), 0x1E3D4C54: np.dtype("<i4")}
PAIRS = 24_300
INSTANCES = 10
#: resized images converted per chunk while the cache is built
_CHUNK = 2430


def _open(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_header(stream: IO[bytes], path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    """The element type and shape of a NORB matrix file, from its header."""
    head = stream.read(8)
    if len(head) < 8:
        raise UsageError(f"{path}: truncated header (download it again)")
    magic, ndim = np.frombuffer(head, "<i4")
    if int(magic) & 0xFFFFFFFF not in MAGIC or not 1 <= ndim <= 8:
        raise UsageError(f"{path}: not a NORB matrix file (magic {int(magic) & 0xFFFFFFFF:#x}, "
                         f"{int(ndim)} dimensions)")
    dims = np.frombuffer(stream.read(4 * max(3, int(ndim))), "<i4")
    return MAGIC[int(magic) & 0xFFFFFFFF], tuple(int(d) for d in dims[:int(ndim)])


def read_matrix(path: Path, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """A whole (small) NORB matrix file, checked to be ``dtype`` ``shape``."""
    try:
        with _open(path) as stream:
            found_dtype, found = read_header(stream, path)
            stored.check_array(str(path), found, found_dtype, shape, dtype)
            count = int(np.prod(shape))
            data = stream.read(count * found_dtype.itemsize)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise UsageError(f"{path}: cannot be read ({exc}); download it again") from None
    if len(data) != count * found_dtype.itemsize:
        raise UsageError(f"{path}: truncated (download it again)")
    return np.frombuffer(data, found_dtype).reshape(shape)


def left_images(path: Path, pairs: int) -> Any:
    """The first image of each stereo pair of a ``-dat`` file, in chunks of rows."""
    try:
        with _open(path) as stream:
            found_dtype, found = read_header(stream, path)
            stored.check_array(str(path), found, found_dtype, (pairs, 2, 96, 96), "uint8")
            for start in range(0, pairs, _CHUNK):
                count = min(_CHUNK, pairs - start)
                data = stream.read(count * 2 * 96 * 96)
                if len(data) != count * 2 * 96 * 96:
                    raise UsageError(f"{path}: truncated after pair {start} (download it "
                                     "again)")
                yield np.frombuffer(data, np.uint8).reshape(count, 2, 96, 96)[:, 0]
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise UsageError(f"{path}: cannot be read ({exc}); download it again") from None


class SmallNORB(FactorDataset):
    """smallNORB with the reference study's factors; the instance is drawn at random."""

    name = "smallnorb"
    factor_names = ("category", "elevation", "azimuth", "lighting")
    factor_sizes = (5, 9, 18, 6)
    image_shape = (1, 64, 64)
    categorical_factors = ("category",)
    deterministic = False
    folder = "smallnorb"
    file_names = tuple(f"{p}-{kind}.mat.gz" for p in PREFIXES for kind in ("dat", "cat", "info"))
    #: stereo pairs per official file (smaller in tests, which the format allows)
    pairs = PAIRS

    def __init__(self, data_dir: str | Path | None = None):
        super().__init__(data_dir)
        folder = self.data_dir / self.folder if (self.data_dir / self.folder).is_dir() \
            else self.data_dir
        files = {name: self._file(folder, name) for name in self.file_names}
        labels = [np.concatenate([
            read_matrix(files[f"{p}-cat.mat.gz"], "int32", (self.pairs,))[:, None],
            read_matrix(files[f"{p}-info.mat.gz"], "int32", (self.pairs, 4))], axis=1)
            for p in PREFIXES]
        #: per image: category, instance, elevation, azimuth (0-17), lighting
        self.labels = np.concatenate(labels)
        self.labels[:, 3] //= 2
        #: image rows of each factor combination, one per instance ``[combinations, 10]``
        self.table = self._table(folder)
        cache = folder / "smallnorb-64x64.npy"
        shape = (len(self.labels), 64, 64)
        dats = [files[f"{p}-dat.mat.gz"] for p in PREFIXES]
        self.array = stored.cache_fresh(cache, dats, shape)
        if self.array is None:
            self.array = stored.write_cache(cache, shape, np.dtype(np.uint8), (
                stored.resized(chunk) for dat in dats for chunk in left_images(dat, self.pairs)))

    def _file(self, folder: Path, name: str) -> Path:
        """A release file, gzipped or not."""
        for candidate in (folder / name, folder / name.removesuffix(".gz")):
            if candidate.is_file():
                return candidate
        raise stored.missing(self.name, self.data_dir, self.folder, name)

    def _table(self, folder: Path) -> np.ndarray:
        """Image rows of each factor combination, one column per instance (in order)."""
        category, instance, elevation, azimuth, lighting = self.labels.T
        sizes = dict(zip(self.factor_names, self.factor_sizes))
        bounds = [(category, sizes["category"]), (instance, INSTANCES),
                  (elevation, sizes["elevation"]), (azimuth, sizes["azimuth"]),
                  (lighting, sizes["lighting"])]
        if any(((v < 0) | (v >= size)).any() for v, size in bounds):
            raise UsageError(f"{folder}: the -cat and -info files hold values outside the "
                             "official ranges")
        keys = self.index(np.stack([category, elevation, azimuth, lighting], axis=1))
        counts = np.bincount(keys, minlength=self.num_combinations)
        if counts.min() == 0 or (counts != counts[0]).any():
            raise UsageError(f"{folder}: the images do not cover every factor combination "
                             f"equally ({counts.min()} to {counts.max()} images each)")
        return np.lexsort((instance, keys)).reshape(self.num_combinations, -1)

    def images(self, factors: np.ndarray, rng: np.random.Generator | None = None
               ) -> torch.Tensor:
        """A random instance's image for each factor row ``[n, 4]``: ``[n, 1, 64, 64]``."""
        if rng is None:
            raise ValueError("smallnorb draws an instance per image: it needs an rng")
        keys = self.index(self.check_factors(factors))
        choice = rng.integers(0, self.table.shape[1], len(keys))
        pixels = stored.read_rows(self.array, self.table[keys, choice])
        return stored.to_images(pixels[..., None])

    @classmethod
    def fetch(cls, data_dir: Path) -> Path:
        for name in cls.file_names:
            fetch_file(cls.name, [BASE + name], Path(data_dir) / cls.folder / name,
                       MD5[name], "md5")
        return Path(data_dir) / cls.folder


@hookimpl
def disentangle_register_datasets() -> list[type[FactorDataset]]:
    return [SmallNORB]
