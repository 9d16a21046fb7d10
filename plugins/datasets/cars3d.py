"""Cars3D (Reed et al., NeurIPS 2015): renderings of 183 car models from 4 elevations and 24
azimuths.

The official release is the archive of the paper's data, whose ``cars`` folder holds one
MATLAB file per car, ``car_<id>_mesh.mat``, with the variable ``im``: uint8
``[128, 128, 3, 24, 4]`` (height, width, colour, azimuth, elevation). Factors are the
reference study's, in its order (disentanglement_lib's ``Cars3D``): elevation (4), azimuth
(24) and the car (183). The cars are numbered in the sorted order of their file names (the
reference code takes the order the folder is listed in, which depends on the file system).
The images are resized to 64x64 with Lanczos resampling, once, and cached beside the files
(``cars3d-64x64.npy``, 216 MB, car by car) and read by rows from there.
"""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from disentangle import hookimpl
from disentangle.datasets import FactorDataset
from disentangle.download import fetch_file
from disentangle.errors import UsageError
from disentangle_plugins.datasets import stored

ARCHIVE_URLS = ("http://www.scottreed.info/files/nips2015-analogy-data.tar.gz",)
#: the archive's MD5 (as disent lists it)
ARCHIVE_MD5 = "4e866a7919c1beedf53964e6f7a23686"
CARS = 183


def read_car(path: Path) -> np.ndarray:
    """One car's renderings ``[4, 24, 128, 128, 3]`` (elevation, azimuth, ...)."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        mesh = loadmat(path, variable_names=["im"]).get("im")
    except (MatReadError, ValueError, OSError, EOFError, IndexError, TypeError) as exc:
        raise UsageError(f"{path}: not a readable MATLAB file ({exc}; download it again)"
                         ) from None
    if mesh is None:
        raise UsageError(f"{path}: has no variable 'im'")
    stored.check_array(f"{path}: 'im'", mesh.shape, mesh.dtype, (128, 128, 3, 24, 4), "uint8")
    return np.einsum("hwcae->eahwc", mesh)


class Cars3D(stored.StoredGrid):
    """Cars3D from the official per-car MATLAB files."""

    name = "cars3d"
    factor_names = ("elevation", "azimuth", "object")
    factor_sizes = (4, 24, CARS)
    image_shape = (3, 64, 64)
    categorical_factors = ("object",)
    folder = "cars3d"
    file_names = ("car_*_mesh.mat",)  # 183 files, one per car

    def locate(self) -> Path:
        """The folder of the car files: ``DATA_DIR/cars3d``, the data folder itself, or the
        folder of the file ``--data-dir`` names."""
        data_dir = self.data_dir
        if data_dir.suffix.lower() == ".mat":
            if not data_dir.is_file():
                raise UsageError(f"cars3d file {data_dir} does not exist")
            return data_dir.parent
        for place in (data_dir / self.folder, data_dir):
            if any(place.glob("car_*_mesh.mat")):
                return place
        raise stored.missing(self.name, data_dir, self.folder, self.file_names[0])

    def open(self, path: Path) -> Any:
        folder = path
        cars = sorted(folder.glob("car_*_mesh.mat"))
        count = self.factor_sizes[2]
        if len(cars) != count:
            raise UsageError(f"{folder}: expected {count} car_*_mesh.mat files, found "
                             f"{len(cars)} (download the data again)")
        cache = folder / "cars3d-64x64.npy"
        shape = (count * 96, 64, 64, 3)
        cached = stored.cache_fresh(cache, cars, shape)
        if cached is not None:
            return cached
        return stored.write_cache(cache, shape, np.dtype(np.uint8), (
            stored.resized(read_car(car).reshape(96, 128, 128, 3)) for car in cars))

    def rows(self, factors: np.ndarray) -> np.ndarray:
        """The cache holds each car's 96 images together (elevation, then azimuth)."""
        elevation, azimuth, car = factors.T
        return car * 96 + elevation * 24 + azimuth

    @classmethod
    def fetch(cls, data_dir: Path) -> Path:
        """Download the archive, then keep only its ``cars`` folder's files."""
        folder = Path(data_dir) / cls.folder
        if len(list(folder.glob("car_*_mesh.mat"))) == CARS:
            return folder
        archive = fetch_file(cls.name, ARCHIVE_URLS,
                             Path(data_dir) / "nips2015-analogy-data.tar.gz", ARCHIVE_MD5,
                             "md5") / "nips2015-analogy-data.tar.gz"
        folder.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar, tempfile.TemporaryDirectory(dir=folder) as tmp:
            members = [m for m in tar.getmembers()
                       if m.isfile() and m.name.endswith("_mesh.mat")
                       and Path(m.name).parent.name == "cars"]
            if len(members) != CARS:
                raise UsageError(f"{archive}: holds {len(members)} cars/*_mesh.mat files, "
                                 f"not {CARS}")
            for member in members:
                target = Path(tmp) / Path(member.name).name
                with tar.extractfile(member) as source, open(target, "wb") as out:
                    out.write(source.read())
                target.replace(folder / target.name)
        return folder


@hookimpl
def disentangle_register_datasets() -> list[type[FactorDataset]]:
    return [Cars3D]
