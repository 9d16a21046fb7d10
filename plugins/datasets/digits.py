"""scikit-learn's 8x8 handwritten digits: 1,797 real images, one factor ``digit``.

The images ship with scikit-learn (``sklearn.datasets.load_digits``), so this dataset needs
no download and no data folder: the smallest real labelled data set for quick experiments.
Pixel values 0..16 are scaled to [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import disentangle
from disentangle.datasets import FactorDataset
from disentangle_plugins.datasets.mnist import LabelledImages


class Digits(LabelledImages):
    """scikit-learn's 8x8 handwritten digits (1,797 images, 0..16 grey levels), factor ``digit``."""

    name = "digits"
    factor_names = ("digit",)
    factor_sizes = (10,)
    categorical_factors = ("digit",)
    image_shape = (1, 8, 8)
    pixel_max = 16

    def __init__(self, data_dir: str | Path | None = None):
        from sklearn.datasets import load_digits

        super().__init__(data_dir)
        pixels, labels = load_digits(return_X_y=True)
        self._set_data(pixels.reshape(-1, 8, 8).astype(np.uint8), labels)


@disentangle.hookimpl
def disentangle_register_datasets() -> list[type[FactorDataset]]:
    return [Digits]
