"""MNIST and Fashion-MNIST: 28x28 grey images with one factor, their class label.

Both are read from the four IDX files they are distributed as (the ``.gz`` archives or their
decompressed contents), placed in a folder named after the dataset inside the data folder
(``--data-dir`` or ``$DISENTANGLE_DATA``)::

    <data-dir>/mnist/train-images-idx3-ubyte.gz          (or without .gz)
    <data-dir>/mnist/train-labels-idx1-ubyte.gz
    <data-dir>/mnist/t10k-images-idx3-ubyte.gz
    <data-dir>/mnist/t10k-labels-idx1-ubyte.gz
    <data-dir>/fashion_mnist/...                          (the same four names)

Both datasets use the same file names, which is why each has its own folder.
``disentangle data fetch mnist`` (or ``fashion_mnist``) downloads the files there and checks
their SHA-256 sums. The 60,000-image training split is used unless ``split="test"``.

This module also holds :class:`LabelledImages`, the shared base of every dataset whose only
factor is a class label (the scikit-learn digits plugin uses it too).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

import disentangle
from disentangle.datasets import FactorDataset
from disentangle.download import fetch_file
from disentangle.errors import UsageError
from disentangle.idx import read_idx


class LabelledImages(FactorDataset):
    """Real images with one factor, a class label; images of a label are drawn at random.

    Subclasses fill :attr:`pixels` (integers ``[N, H, W]``, ``0..pixel_max``) and
    :attr:`labels` (``[N]``, ``0..factor_sizes[0] - 1``) through :meth:`_set_data`.
    Factors follow the data's own label frequencies, not a uniform draw, so a batch from
    :meth:`sample` is a plain random batch of the data set.
    """

    deterministic: ClassVar[bool] = False
    #: the pixel value that maps to 1.0
    pixel_max: ClassVar[int] = 255

    pixels: np.ndarray
    labels: np.ndarray

    def _set_data(self, pixels: np.ndarray, labels: np.ndarray) -> None:
        """Store the images and labels, and index the rows of each label for fast draws."""
        self.pixels = pixels
        self.labels = labels.astype(np.int64)
        #: rows sorted by label; the rows of label k are ``_by_label[_starts[k]:][:_counts[k]]``
        self._by_label = np.argsort(self.labels, kind="stable")
        self._counts = np.bincount(self.labels, minlength=self.factor_sizes[0])
        self._starts = np.concatenate(([0], np.cumsum(self._counts)[:-1]))
        #: the pixels copied to each accelerator they were asked on (see :meth:`to_tensor`)
        self._on_device: dict[torch.device, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.labels)

    def to_tensor(self, rows: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
        """The images at ``rows`` as a float tensor ``[n, 1, H, W]`` in [0, 1] on ``device``.

        Off the CPU they are cut from a copy of the whole set made there once, so that a
        batch sends only its row numbers from the host.
        """
        device = torch.device(device)
        if device.type == "cpu":
            pixels = torch.from_numpy(self.pixels[rows])
        else:
            if device not in self._on_device:
                self._on_device[device] = torch.tensor(self.pixels, device=device)
            pixels = self._on_device[device][torch.from_numpy(np.asarray(rows)).to(device)]
        return pixels.unsqueeze(1).float().div_(self.pixel_max)

    def _rows(self, factors: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        """For each label row, a random row of the data with that label (drawn with ``rng``)."""
        if rng is None:
            raise ValueError(f"{self.name}: images(factors) needs an rng to pick one of the "
                             "many images with each label")
        wanted = self.check_factors(factors)[:, 0]
        missing = sorted(set(wanted[self._counts[wanted] == 0].tolist()))
        if missing:
            raise ValueError(f"{self.name}: no image has {self.factor_names[0]} {missing}")
        offsets = rng.integers(0, self._counts[wanted])
        return self._by_label[self._starts[wanted] + offsets]

    def images(self, factors: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        """For each label row, a random image with that label (drawn with ``rng``)."""
        return self.to_tensor(self._rows(factors, rng))

    def images_on(self, device: torch.device, factors: np.ndarray,
                  rng: np.random.Generator | None = None) -> torch.Tensor:
        return self.to_tensor(self._rows(factors, rng), device)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Labels of ``n`` random images: the data's label frequencies, int64 ``[n, 1]``."""
        return self.labels[rng.integers(0, len(self), n)][:, None]

    def sample(self, n: int, rng: np.random.Generator, device: torch.device | str = "cpu"
               ) -> tuple[torch.Tensor, np.ndarray]:
        """``n`` random images (rows drawn with replacement) on ``device``, and their labels
        ``[n, 1]``."""
        rows = rng.integers(0, len(self), n)
        return self.to_tensor(rows, device), self.labels[rows][:, None]


class IdxImages(LabelledImages):
    """A labelled image set read from MNIST-style IDX files; see the module docstring."""

    factor_sizes: ClassVar[tuple[int, ...]] = (10,)
    image_shape: ClassVar[tuple[int, int, int]] = (1, 28, 28)
    #: the split -> (image file, label file), without ``.gz``
    split_files: ClassVar[dict[str, tuple[str, str]]] = {
        "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }
    #: base URLs tried in order by :meth:`fetch` (each followed by a file name)
    mirrors: ClassVar[tuple[str, ...]]
    #: downloaded file name -> its published SHA-256
    checksums: ClassVar[dict[str, str]]

    def __init__(self, data_dir: str | Path | None = None, split: str = "train"):
        super().__init__(data_dir)
        if split not in self.split_files:
            raise UsageError(f"{self.name}: unknown split {split!r}; "
                             f"choose one of {', '.join(self.split_files)}")
        self.split = split
        image_file, label_file = (self._find(stem) for stem in self.split_files[split])
        pixels, labels = read_idx(image_file), read_idx(label_file)
        _, height, width = self.image_shape
        if pixels.dtype != np.uint8 or pixels.shape[1:] != (height, width):
            raise UsageError(f"{image_file}: expected uint8 images of shape [N, {height}, "
                             f"{width}], found {pixels.dtype} {list(pixels.shape)}")
        if labels.dtype != np.uint8 or labels.ndim != 1:
            raise UsageError(f"{label_file}: expected a uint8 vector of labels, "
                             f"found {labels.dtype} {list(labels.shape)}")
        if len(labels) != len(pixels):
            raise UsageError(f"{label_file} has {len(labels)} labels but {image_file} "
                             f"has {len(pixels)} images")
        if labels.size and labels.max() >= self.factor_sizes[0]:
            raise UsageError(f"{label_file}: label {labels.max()} is out of range "
                             f"0..{self.factor_sizes[0] - 1}")
        self._set_data(pixels, labels)

    @classmethod
    def folder(cls, data_dir: Path) -> Path:
        """Where this dataset's files live inside the data folder."""
        return Path(data_dir) / cls.name

    def _find(self, stem: str) -> Path:
        hint = f"`disentangle data fetch {self.name}` downloads the files"
        folder = self.folder(self.data_dir)
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
        raise UsageError(f"{self.name}: neither {folder / stem} nor {folder / stem}.gz "
                         f"exists; {hint}")

    @classmethod
    def fetch(cls, data_dir: Path) -> Path:
        """Download the four ``.gz`` files into ``<data_dir>/<name>/``; return that folder.

        Files already there with the right checksum are kept. Each missing file is tried
        from every mirror in turn; it is only saved once its SHA-256 matches.
        """
        folder = cls.folder(data_dir)
        for file_name, sha256 in cls.checksums.items():
            fetch_file(cls.name, [f"{m.rstrip('/')}/{file_name}" for m in cls.mirrors],
                       folder / file_name, sha256)
        return folder


class MNIST(IdxImages):
    """MNIST handwritten digits (LeCun et al.): 60,000 training images, factor ``digit``."""

    name = "mnist"
    factor_names = ("digit",)
    categorical_factors = ("digit",)
    mirrors = (
        "https://ossci-datasets.s3.amazonaws.com/mnist",
        "https://storage.googleapis.com/cvdf-datasets/mnist",
    )
    checksums = {
        "train-images-idx3-ubyte.gz":
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz":
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz":
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz":
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    }


class FashionMNIST(IdxImages):
    """Fashion-MNIST (Xiao et al. 2017): 60,000 training images, factor ``item``.

    Registered as ``fashion_mnist``. Items: 0 T-shirt/top, 1 trouser, 2 pullover, 3 dress,
    4 coat, 5 sandal, 6 shirt, 7 sneaker, 8 bag, 9 ankle boot.
    """

    name = "fashion_mnist"
    factor_names = ("item",)
    categorical_factors = ("item",)
    mirrors = (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion",
    )
    checksums = {
        "train-images-idx3-ubyte.gz":
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz":
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz":
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz":
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    }


@disentangle.hookimpl
def disentangle_register_datasets() -> list[type[FactorDataset]]:
    return [MNIST, FashionMNIST]
