"""MPI3D (Gondal et al., NeurIPS 2019): a robot arm holding an object, in three renderings.

``mpi3d_toy`` (simple synthetic renderings), ``mpi3d_realistic`` (realistic renderings) and
``mpi3d_real`` (camera photographs) share one factor grid of 1,036,800 combinations. Each
official ``.npz`` holds one array, ``images``: uint8 ``[1036800, 64, 64, 3]``, in row-major
order of the factors below (the official description reshapes it to
``[6, 6, 2, 3, 3, 40, 40, 64, 64, 3]``; the vertical axis varies fastest):

=================  ====  ========================================================
object_color       6     white, green, red, blue, brown, olive
object_shape       6     cone, cube, cylinder, hexagonal, pyramid, sphere
object_size        2     small, large
camera_height      3     top, center, bottom
background_color   3     purple, sea green, salmon
horizontal_axis    40    rotation of the arm about the vertical axis
vertical_axis      40    rotation of the arm about the horizontal axis
=================  ====  ========================================================

The file has no labels, so its row order cannot be checked; its key, shape and dtype are.
The array is read by rows where it lies inside the archive (its 12.7 GB are never loaded).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from disentangle import hookimpl
from disentangle.datasets import FactorDataset
from disentangle.download import fetch_file
from disentangle_plugins.datasets.stored import StoredGrid, npz_member

#: the official archive's address (the dataset's README), then the mirrors other projects
#: moved to when it was unreachable: the authors' Hugging Face copy and a second bucket
#: (which names the files ``toy.npz``, ``realistic.npz``, ``real.npz``); the MD5 decides
ADDRESSES = ("https://storage.googleapis.com/disentanglement_dataset/Final_Dataset/{file}",
             "https://huggingface.co/datasets/waleedgondal/mpi3d/resolve/main/{file}",
             "https://storage.googleapis.com/mpi3d_disentanglement_dataset/data/{short}")


class MPI3D(StoredGrid):
    """One MPI3D variant from its official ``.npz``."""

    factor_names = ("object_color", "object_shape", "object_size", "camera_height",
                    "background_color", "horizontal_axis", "vertical_axis")
    factor_sizes = (6, 6, 2, 3, 3, 40, 40)
    image_shape = (3, 64, 64)
    categorical_factors = ("object_color", "object_shape", "background_color")
    folder = "mpi3d"
    #: the file's MD5 (as disent lists it)
    md5: ClassVar[str]

    def open(self, path: Path) -> Any:
        return npz_member(path, "images", (self.num_combinations, 64, 64, 3), "uint8")

    @classmethod
    def fetch(cls, data_dir: Path) -> Path:
        name = cls.file_names[0]
        short = name.removeprefix("mpi3d_")
        return fetch_file(cls.name, [a.format(file=name, short=short) for a in ADDRESSES],
                          Path(data_dir) / cls.folder / name, cls.md5, "md5")


class MPI3DToy(MPI3D):
    """MPI3D-toy: simple synthetic renderings."""

    name = "mpi3d_toy"
    file_names = ("mpi3d_toy.npz",)
    md5 = "55889cb7c7dfc655d6e0277beee88868"


class MPI3DRealistic(MPI3D):
    """MPI3D-realistic: realistic synthetic renderings."""

    name = "mpi3d_realistic"
    file_names = ("mpi3d_realistic.npz",)
    md5 = "59a6225b88b635365f70c91b3e52f70f"


class MPI3DReal(MPI3D):
    """MPI3D-real: photographs of the real robot arm."""

    name = "mpi3d_real"
    file_names = ("mpi3d_real.npz",)
    md5 = "0f33f609918fb5c97996692f91129802"


@hookimpl
def disentangle_register_datasets() -> list[type[FactorDataset]]:
    return [MPI3DToy, MPI3DRealistic, MPI3DReal]
