"""AC-GAN (Odena et al. 2017): the discriminator also classifies the images.

The generator sees ``[z, one-hot(y)]`` (see :mod:`~disentangle_plugins.models.conditional`
for what the conditional GANs share); the discriminator sees the image alone and has a
second head, its auxiliary head (FC ``q_dim``, then one logit per class), predicting the
label. With ``L_C`` the class cross-entropy, D minimises its
adversarial loss plus ``L_C`` on real images (their true labels) and on generated ones (the
labels they were made for); G minimises its adversarial loss plus ``L_C`` on its images.
The classifier head learns with D at ``lr_d``; the standard GAN loss is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from disentangle import hookimpl
from disentangle.config import option
from disentangle.models import Losses, Model
from disentangle_plugins.models.conditional import ConditionalGAN, ConditionalGANConfig, Labelled


@dataclass(frozen=True)
class ACGANConfig(ConditionalGANConfig):
    """Conditional GAN hyper-parameters plus the width of the classifier head."""

    q_dim: int = option(128, "width of the classifier head's hidden FC layer")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.q_dim < 1:
            raise ValueError("q_dim must be positive")


class ACGAN(ConditionalGAN):
    """Auxiliary-classifier GAN: D's second head classifies real and generated images."""

    name = "acgan"
    Config = ACGANConfig

    def discriminator_options(self, config: ACGANConfig) -> dict[str, int]:
        """A classifier head with one logit per class."""
        return {"head_out": self.num_classes, "head_dim": config.q_dim}

    def code_loss(self, q: torch.Tensor | None, latent: Labelled
                  ) -> tuple[torch.Tensor, Losses]:
        """Class cross-entropy of generated images (for both players)."""
        loss = F.cross_entropy(q, latent.labels.to(q.device))
        return loss, {"class_loss_fake": loss.detach()}

    def real_code_loss(self, q: torch.Tensor | None, labels: torch.Tensor | None
                       ) -> tuple[torch.Tensor, Losses]:
        """Class cross-entropy of real images (for D)."""
        loss = F.cross_entropy(q, labels)
        return loss, {"class_loss_real": loss.detach()}


@hookimpl
def disentangle_register_models() -> list[type[Model]]:
    return [ACGAN]
