"""dSprites (Matthey et al. 2017): 2D sprites from five discrete factors, rendered on demand.

The official dataset holds all 737,280 combinations of shape (square, ellipse, heart), scale
(6 values in [0.5, 1]), orientation (40 values in [0, 2 pi]), posX and posY (32 values each
in [0, 1]) as 64x64 binary images. This module draws any combination procedurally, so no
download and almost no memory is needed.
"""

from __future__ import annotations

import numpy as np
import torch

from disentangle import hookimpl
from disentangle.datasets import FactorDataset

#: sprite centre in pixels (pixel ``i`` covers ``[i, i + 1)``) is ``_POS_OFFSET + _POS_RANGE * pos``
_POS_OFFSET = 16.0
_POS_RANGE = 32.0
#: half side of the square at scale 1, in pixels
_SQUARE_HALF = 10.0
#: semi-axes of the ellipse at scale 1, in pixels (long axis horizontal at orientation 0)
_ELLIPSE_AXES = (12.75, 7.25)
#: heart at scale 1: a 45-degree diamond (|u| + |v - centre| <= radius) under two lobes
_HEART_DIAMOND = (0.25, 8.25)
_HEART_LOBES = (4.125, -3.875, 8.25 / 2**0.5)


class DSprites(FactorDataset):
    """dSprites: binary 64x64 sprites in the official factor order, drawn on demand."""

    name = "dsprites"
    factor_names = ("shape", "scale", "orientation", "posX", "posY")
    factor_sizes = (3, 6, 40, 32, 32)
    image_shape = (1, 64, 64)
    categorical_factors = ("shape",)

    def images(self, factors: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        """Binary sprites for factor rows ``[n, 5]``: float tensor ``[n, 1, 64, 64]`` in {0, 1}."""
        factors = self.check_factors(factors)
        return render(factors).unsqueeze(1).float()


def render(factors: np.ndarray) -> torch.Tensor:
    """Draw sprites for validated factor rows ``[n, 5]``: bool tensor ``[n, 64, 64]``."""
    f = torch.from_numpy(np.ascontiguousarray(factors))
    scale = 0.5 + 0.1 * f[:, 1].double()
    angle = f[:, 2].double() * (2 * np.pi / 39)
    cx = _POS_OFFSET + _POS_RANGE * f[:, 3].double() / 31
    cy = _POS_OFFSET + _POS_RANGE * f[:, 4].double() / 31
    centres = torch.arange(64, dtype=torch.float64) + 0.5
    dx = centres[None, None, :] - cx[:, None, None]
    dy = centres[None, :, None] - cy[:, None, None]
    cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    # sprite-frame coordinates at scale 1: rotating the sprite counter-clockwise on screen
    # (image rows grow downwards) is rotating the sampling grid the other way
    s = scale[:, None, None]
    u = (cos * dx - sin * dy) / s
    v = (sin * dx + cos * dy) / s
    shape = f[:, 0][:, None, None]
    square = torch.maximum(u.abs(), v.abs()) <= _SQUARE_HALF
    ellipse = (u / _ELLIPSE_AXES[0]) ** 2 + (v / _ELLIPSE_AXES[1]) ** 2 <= 1
    lx, ly, lr = _HEART_LOBES
    top, radius = _HEART_DIAMOND
    heart = ((u.abs() - lx) ** 2 + (v - ly) ** 2 <= lr**2) | (u.abs() + (v - top).abs() <= radius)
    return torch.where(shape == 0, square, torch.where(shape == 1, ellipse, heart))


@hookimpl
def disentangle_register_datasets() -> list[type[FactorDataset]]:
    return [DSprites]
