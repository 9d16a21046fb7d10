"""FactorVAE (Kim and Mnih 2018): the VAE plus a penalty on the total correlation of z.

A discriminator learns to tell samples ``z ~ q(z)`` from samples of the product of its
marginals, made by permuting each latent independently across the batch ("permute-dims").
Its logit difference estimates the density ratio ``log q(z) / prod_j q(z_j)``, so the mean
difference over the batch estimates the total correlation, which the VAE minimises with
weight ``gamma``: loss = reconstruction + KL + gamma * TC. The discriminator has its own
Adam optimiser and is updated on the same batch after the VAE (as the reference study's
code does). Reference study: discriminator of 6 x 1000 units with leaky ReLU, Adam 1e-4
(betas 0.5, 0.9), gamma in {10, 20, 30, 40, 50, 100} (default 10, a member of the grid).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from disentangle import hookimpl
from disentangle.config import option
from disentangle.datasets import FactorDataset
from disentangle.models import Losses, Model
from disentangle_plugins.models.vae import VAE, VAEConfig


@dataclass(frozen=True)
class FactorVAEConfig(VAEConfig):
    """The VAE's hyper-parameters plus the TC weight and the discriminator's."""

    gamma: float = option(10.0, "weight of the total-correlation estimate "
                                "(reference grid 10, 20, 30, 40, 50, 100)")
    disc_layers: int = option(6, "hidden layers of the latent discriminator")
    disc_units: int = option(1000, "units per hidden layer of the latent discriminator")
    disc_leak: float = option(0.2, "negative slope of the discriminator's leaky ReLUs")
    lr_disc: float = option(1e-4, "Adam learning rate of the discriminator")
    beta1_disc: float = option(0.5, "Adam beta1 of the discriminator")
    beta2_disc: float = option(0.9, "Adam beta2 of the discriminator")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.gamma < 0 or self.disc_layers < 1 or self.disc_units < 1 or self.lr_disc <= 0:
            raise ValueError("gamma must be >= 0; disc_layers, disc_units, lr_disc > 0")
        if not (0 <= self.beta1_disc < 1 and 0 <= self.beta2_disc < 1):
            raise ValueError("Adam betas must lie in [0, 1)")


def permute_dims(z: torch.Tensor) -> torch.Tensor:
    """Each column of ``z`` ``[n, d]`` shuffled independently across the batch.

    The rows are then samples of the product of the batch's marginals: every latent keeps
    its distribution, any dependence between latents is destroyed.
    """
    n = len(z)
    rows = torch.stack([torch.randperm(n) for _ in range(z.shape[1])], dim=1).to(z.device)
    return z.gather(0, rows)


class LatentDiscriminator(nn.Module):
    """MLP on latent vectors: logits of (joint sample, product-of-marginals sample)."""

    def __init__(self, latent_dim: int, layers: int, units: int, leak: float):
        super().__init__()
        widths = [latent_dim] + [units] * layers
        body: list[nn.Module] = []
        for i in range(layers):
            body += [nn.Linear(widths[i], widths[i + 1]), nn.LeakyReLU(leak)]
        self.net = nn.Sequential(*body, nn.Linear(units, 2))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class FactorVAE(VAE):
    """FactorVAE: reconstruction + KL + gamma * (discriminator's TC estimate)."""

    name = "factor_vae"
    Config = FactorVAEConfig

    def __init__(self, config: FactorVAEConfig, dataset: FactorDataset, device: torch.device):
        super().__init__(config, dataset, device)
        self.discriminator = LatentDiscriminator(
            config.latent_dim, config.disc_layers, config.disc_units, config.disc_leak
        ).to(self.device)
        self.opt_disc = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr_disc,
                                         betas=(config.beta1_disc, config.beta2_disc))

    def regularizer(self, kl: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor,
                    z: torch.Tensor, step: int) -> tuple[torch.Tensor, Losses]:
        # the discriminator is a fixed function here: gradients go to the encoder only
        self.discriminator.requires_grad_(False)
        try:
            logits = self.discriminator(z)
        finally:
            self.discriminator.requires_grad_(True)
        tc = (logits[:, 0] - logits[:, 1]).mean()
        return kl + self.config.gamma * tc, {"total_correlation": tc.detach()}

    def update_auxiliary(self, z: torch.Tensor) -> Losses:
        """One discriminator step: class 0 for the batch's ``z``, class 1 for permuted ``z``."""
        logits = self.discriminator(torch.cat([z, permute_dims(z)]))
        labels = torch.arange(2, device=self.device).repeat_interleave(len(z))
        loss = F.cross_entropy(logits, labels)
        self.optimize(self.opt_disc, loss)
        accuracy = (logits.argmax(1) == labels).float().mean()
        return {"discriminator_loss": loss.detach(), "discriminator_accuracy": accuracy.detach()}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {**super().optimizers(), "discriminator": self.opt_disc}


@hookimpl
def disentangle_register_models() -> list[type[Model]]:
    return [FactorVAE]
