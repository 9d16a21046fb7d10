"""InfoGAN-CR (Lin et al., ICML 2020): InfoGAN with a contrastive regulariser.

Each step also generates pairs of images that share the value of one continuous code
(chosen uniformly per pair) and the noise, while the other codes are drawn independently
for each image. A separate classifier, CR, sees a pair stacked along the channels and must
name the shared code. CR learns to do so at every step; from ``cr_start`` on, G is also
trained to make the shared code nameable, with ``alpha`` times CR's cross-entropy added to
its loss. Changing one code must then change the image in a way no other code does, which
pushes each code towards one factor.

Following the public reference code (TF 1, the dSprites run) rather than a reading of the
paper alone:

- CR is a network of its own, not a head on D's trunk: D's convolutional trunk layout
  (spectral norm on every layer but the output) on the two stacked images, then a linear
  layer to one logit per continuous code;
- the other codes of a pair differ by no minimum gap (the dSprites run keeps the gap at 0);
- CR is re-initialised, with its optimiser state, when G's term switches on;
- the term switches on at 288,000 of 322,560 iterations in that run (89% of training);
  ``cr_start`` sets the step here, since this project's schedules are far shorter;
- per step: one CR update on pairs G made without gradients, one D/Q update and G's
  updates, each with its own pairs.

Categorical codes, where the preset has them, are drawn independently for the two images
of a pair: only continuous codes are named (the reference has no categorical code).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from disentangle import hookimpl
from disentangle.config import option
from disentangle.datasets import FactorDataset
from disentangle.models import Losses, Model
from disentangle_plugins.models.infogan import Codes, InfoGAN, InfoGANConfig
from disentangle_plugins.models.nets import Discriminator, init_gan_weights


@dataclass(frozen=True)
class InfoGANCRConfig(InfoGANConfig):
    """InfoGAN's hyper-parameters plus the contrastive regulariser's."""

    alpha: float = option(2.0, "weight of the contrastive loss in G's loss (paper: 2.0)")
    cr_start: int = option(1000, "step at which G's contrastive term switches on (the "
                                 "reference run: 288,000 of 322,560, i.e. 89% of training)")
    lr_cr: float = option(2e-3, "Adam learning rate of the contrastive classifier CR")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.continuous_dim < 2:
            raise ValueError("InfoGAN-CR names the shared one of >= 2 continuous codes: "
                             "set continuous_dim >= 2")
        if self.alpha < 0 or self.cr_start < 0 or self.lr_cr <= 0:
            raise ValueError("alpha and cr_start must be >= 0 and lr_cr > 0")


def pair_latents(first: Codes, second: Codes, shared: torch.Tensor) -> Codes:
    """``second`` with the noise of ``first`` and, in row ``i``, continuous code
    ``shared[i]`` set to ``first``'s value: the partner of each image of ``first``."""
    rows = torch.arange(len(shared))
    continuous = second.continuous.clone()
    continuous[rows, shared] = first.continuous[rows, shared]
    return Codes(first.noise.clone(), second.classes, continuous)


def contrastive_loss(logits: torch.Tensor, shared: torch.Tensor) -> torch.Tensor:
    """CR's cross-entropy of naming the shared code: ``logits`` ``[n, d]``, ``shared``
    ``[n]`` (mean over the pairs)."""
    return F.cross_entropy(logits, shared.to(logits.device))


class PairClassifier(nn.Module):
    """CR: D's trunk layout on two images stacked along the channels, then one logit per
    continuous code (no spectral norm on that last layer, as in the reference)."""

    def __init__(self, image_shape: tuple[int, int, int], channels: tuple[int, ...],
                 fc_dim: int, codes: int, leak: float):
        super().__init__()
        c, h, w = image_shape
        self.trunk = Discriminator((2 * c, h, w), channels, fc_dim, leak=leak,
                                   spectral_norm=True).trunk
        self.out = nn.Linear(fc_dim, codes)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return self.out(self.trunk(torch.cat([first, second], dim=1)))


class InfoGANCR(InfoGAN):
    """InfoGAN-CR: InfoGAN plus a contrastive regulariser on pairs sharing one code."""

    name = "infogan_cr"
    Config = InfoGANCRConfig

    def __init__(self, config: InfoGANCRConfig, dataset: FactorDataset, device: torch.device):
        super().__init__(config, dataset, device)
        self.cr = PairClassifier(self.image_shape, config.d_channels, config.fc_dim,
                                 config.continuous_dim, config.leak).to(self.device)
        init_gan_weights(self.cr)
        self.opt_cr = torch.optim.Adam(self.cr.parameters(), lr=config.lr_cr,
                                       betas=(config.beta1, config.beta2))

    def sample_pairs(self, n: int) -> tuple[Codes, Codes, torch.Tensor]:
        """``n`` pairs of latents and the index of the continuous code each pair shares."""
        first = self.sample_latent(n)
        shared = torch.randint(0, self.config.continuous_dim, (n,))
        return first, pair_latents(first, self.sample_latent(n), shared), shared

    def pair_loss(self, n: int, train_generator: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """CR's loss on ``n`` fresh pairs and its accuracy; gradients reach CR, and G too
        when ``train_generator``."""
        first, second, shared = self.sample_pairs(n)
        latent = self.latent_vector(Codes(
            torch.cat([first.noise, second.noise]), torch.cat([first.classes, second.classes]),
            torch.cat([first.continuous, second.continuous])))
        with torch.set_grad_enabled(train_generator):
            both = self.generator(latent)
        logits = self.cr(both[:n], both[n:])
        accuracy = (logits.detach().argmax(1).cpu() == shared).float().mean()
        return contrastive_loss(logits, shared), accuracy

    def generator_regularizer(self, n: int, step: int) -> torch.Tensor:
        if step < self.config.cr_start or self.config.alpha == 0:
            return torch.zeros((), device=self.device)
        return self.config.alpha * self.pair_loss(n, train_generator=True)[0]

    def train_step(self, images: torch.Tensor, factors: np.ndarray, step: int) -> Losses:
        if step == self.config.cr_start and step > 0:  # a fresh CR for G's term
            init_gan_weights(self.cr)
            self.opt_cr.state.clear()
        cr_loss, accuracy = self.pair_loss(images.shape[0], train_generator=False)
        self.optimize(self.opt_cr, cr_loss)
        return {**super().train_step(images, factors, step), "cr_loss": cr_loss.detach(),
                "cr_accuracy": accuracy}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {**super().optimizers(), "cr": self.opt_cr}


@hookimpl
def disentangle_register_models() -> list[type[Model]]:
    return [InfoGANCR]
