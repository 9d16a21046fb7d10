"""Shapes3D (Burgess and Kim 2018): 480,000 RGB 64x64 renderings of an object in a room.

The official ``3dshapes.h5`` holds two datasets: ``images`` (uint8 ``[480000, 64, 64, 3]``)
and ``labels`` (float64 ``[480000, 6]``: each row's factor values). The six factors, in the
file's column order, with the values the labels hold:

==============  =====  =========================================
floor_hue       10     0, 0.1, ..., 0.9
wall_hue        10     0, 0.1, ..., 0.9
object_hue      10     0, 0.1, ..., 0.9
scale           8      0.75 to 1.25, evenly spaced
shape           4      0, 1, 2, 3 (cube, cylinder, sphere, capsule)
orientation     15     -30 to 30 degrees, evenly spaced
==============  =====  =========================================

Rows follow the factor grid in row-major order (orientation varies fastest). Every load
checks the two datasets' shapes and dtypes and that the labels are that grid, row by row;
the images are then read by rows, never loaded whole: from the file where it stores each
image on its own, else (the compressed release, 255 MB) from ``3dshapes.h5.images.npy``,
unpacked once beside it in chunks (5.9 GB).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from disentangle import hookimpl
from disentangle.datasets import FactorDataset
from disentangle.download import fetch_file
from disentangle.errors import UsageError
from disentangle_plugins.datasets.stored import (
    CHUNK_ROWS,
    StoredGrid,
    cache_fresh,
    hdf5_datasets,
    write_cache,
)

FACTOR_VALUES = (np.arange(10) / 10, np.arange(10) / 10, np.arange(10) / 10,
                 np.linspace(0.75, 1.25, 8), np.arange(4.0), np.linspace(-30.0, 30.0, 15))
#: where the file is published (the project's README), and its MD5 (as disent lists it, and
#: as others publish it independently)
URLS = ("https://storage.googleapis.com/3d-shapes/3dshapes.h5",)
MD5 = "099a2078d58cec4daad0702c55d06868"


def grid_values(factor_sizes: tuple[int, ...]) -> np.ndarray:
    """The labels of the full grid in row-major order: float64 ``[N, 6]``."""
    columns = np.unravel_index(np.arange(int(np.prod(factor_sizes))), factor_sizes)
    return np.stack([FACTOR_VALUES[k][c] for k, c in enumerate(columns)], axis=1)


class Shapes3D(StoredGrid):
    """Shapes3D from the official ``3dshapes.h5`` (h5py needed)."""

    name = "shapes3d"
    factor_names = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
    factor_sizes = (10, 10, 10, 8, 4, 15)
    image_shape = (3, 64, 64)
    categorical_factors = ("shape",)
    file_names = ("3dshapes.h5",)
    folder = "shapes3d"

    def open(self, path: Path) -> Any:
        n = self.num_combinations
        self.file, arrays = hdf5_datasets(path, {"images": ((n, 64, 64, 3), "uint8"),
                                                 "labels": ((n, 6), "float64")})
        labels = arrays["labels"][()]
        expected = grid_values(self.factor_sizes)
        wrong = np.flatnonzero(~np.isclose(labels, expected, atol=1e-6).all(axis=1))
        if wrong.size:
            row = int(wrong[0])
            raise UsageError(f"{path}: 'labels' row {row} is "
                             f"{np.round(labels[row], 6).tolist()}, the official grid has "
                             f"{np.round(expected[row], 6).tolist()} there: not the official "
                             "row order")
        images = arrays["images"]
        if images.chunks is None or images.chunks[0] == 1:
            return images  # each row can be read alone
        # chunks of many images (the release is compressed): a random row would cost a whole
        # chunk's decompression, so the images are unpacked once, in order, beside the file
        cache = path.with_name(f"{path.name}.images.npy")
        shape = tuple(images.shape)
        cached = cache_fresh(cache, [path], shape)
        if cached is not None:
            return cached
        return write_cache(cache, shape, np.dtype(np.uint8),
                           (images[s:s + CHUNK_ROWS] for s in range(0, n, CHUNK_ROWS)))

    @classmethod
    def fetch(cls, data_dir: Path) -> Path:
        return fetch_file(cls.name, URLS, Path(data_dir) / cls.folder / cls.file_names[0],
                          MD5, "md5")


@hookimpl
def disentangle_register_datasets() -> list[type[FactorDataset]]:
    return [Shapes3D]
