"""CGAN (Mirza and Osindero 2014): the label is an input of both players.

The generator sees ``[z, one-hot(y)]`` (see :mod:`~disentangle_plugins.models.conditional`
for what the conditional GANs share); the discriminator sees the image with the one-hot
label tiled over it as extra input channels, one constant channel per class, and is
trained with the standard (non-saturating) GAN loss. The paper's MNIST networks were fully
connected with maxout; here they are the shared convolutional trunks and ``arch`` presets.
"""

from __future__ import annotations

import torch

from disentangle import hookimpl
from disentangle.models import Model
from disentangle_plugins.models.conditional import ConditionalGAN, ConditionalGANConfig


class CGAN(ConditionalGAN):
    """Conditional GAN: the one-hot label goes to G's input and to D as extra channels."""

    name = "cgan"

    def discriminator_options(self, config: ConditionalGANConfig) -> dict[str, int]:
        """One extra input channel per class."""
        return {"d_extra_channels": self.num_classes}

    def discriminate(self, images: torch.Tensor, labels: torch.Tensor | None
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """D on the image stacked with its tiled one-hot label ``[n, C + K, H, W]``."""
        height, width = images.shape[-2:]
        tiles = self.one_hot(labels)[:, :, None, None].expand(-1, -1, height, width)
        return self.discriminator(torch.cat([images, tiles], dim=1))


@hookimpl
def disentangle_register_models() -> list[type[Model]]:
    return [CGAN]
