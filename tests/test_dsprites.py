"""dSprites: factor grid, procedural renderer, official-file loader and variants."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import disentangle
from disentangle_plugins.datasets.dsprites import DSprites


@pytest.fixture
def ds(monkeypatch: pytest.MonkeyPatch) -> DSprites:
    monkeypatch.delenv("DISENTANGLE_DATA", raising=False)
    return DSprites()


def test_load_dataset_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISENTANGLE_DATA", raising=False)
    ds = disentangle.load_dataset("dsprites")
    assert isinstance(ds, DSprites)
    assert ds.factor_sizes == (3, 6, 40, 32, 32)
    assert ds.num_combinations == 737_280


def test_images_are_binary_with_the_declared_shape(ds: DSprites) -> None:
    images, factors = ds.sample(16, np.random.default_rng(0))
    assert images.shape == (16, 1, 64, 64) and images.dtype == torch.float32
    assert set(images.unique().tolist()) <= {0.0, 1.0}
    assert (images.sum((1, 2, 3)) > 0).all()
    assert factors.shape == (16, 5)
