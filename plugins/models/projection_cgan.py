"""The projection-discriminator cGAN (Miyato and Koyama 2018).

The generator sees ``[z, one-hot(y)]`` (see :mod:`~disentangle_plugins.models.conditional`
for what the conditional GANs share). The discriminator conditions by an inner product:
with ``phi(x)`` its trunk's features (after the FC layer), the logit of image ``x`` with
label ``y`` is ``psi(phi(x)) + <embed(y), phi(x)>``, ``psi`` a linear layer and ``embed`` a
learnt vector per class (:class:`~disentangle_plugins.models.nets.Discriminator` with
``projection_classes``). As in the paper, every D layer (the embedding included) has
spectral normalisation, D has no batch norm, and both players use the hinge loss; these
are the defaults here and can be changed with ``--set``. The paper's ResNets, their
generator's conditional batch norm and its Adam settings are not used: the networks and
learning rates are the shared ``arch`` presets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from disentangle import hookimpl
from disentangle.config import option
from disentangle.models import Model
from disentangle_plugins.models.conditional import ConditionalGAN, ConditionalGANConfig


@dataclass(frozen=True)
class ProjectionCGANConfig(ConditionalGANConfig):
    """Conditional GAN hyper-parameters with the paper's loss and normalisation."""

    loss: Literal["standard", "hinge"] = option(
        "hinge", "adversarial loss: hinge (the paper's) or non-saturating cross-entropy")
    spectral_norm: bool | None = option(True, "spectral normalisation on every D layer")
    batchnorm: bool | None = option(False, "batch norm after D's hidden layers but the first")


class ProjectionCGAN(ConditionalGAN):
    """cGAN whose discriminator projects a label embedding onto its image features."""

    name = "projection_cgan"
    Config = ProjectionCGANConfig

    def discriminator_options(self, config: ProjectionCGANConfig) -> dict[str, int]:
        """A class embedding for the projection."""
        return {"projection_classes": self.num_classes}


@hookimpl
def disentangle_register_models() -> list[type[Model]]:
    return [ProjectionCGAN]
