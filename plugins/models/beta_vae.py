"""beta-VAE (Higgins et al. 2017): the VAE with its KL term weighted by ``beta``.

``beta`` > 1 presses the posterior towards the factorised prior harder than the evidence
bound does, trading reconstruction for (hopefully) disentangled latents. The reference
study's grid is beta in {1, 2, 4, 6, 8, 16}; the default 4 is a member of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from disentangle import hookimpl
from disentangle.config import option
from disentangle.models import Losses, Model
from disentangle_plugins.models.vae import VAE, VAEConfig


@dataclass(frozen=True)
class BetaVAEConfig(VAEConfig):
    """The VAE's hyper-parameters plus the KL weight."""

    beta: float = option(4.0, "weight of the KL term (reference grid 1, 2, 4, 6, 8, 16)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta < 0:
            raise ValueError("beta must be >= 0")


class BetaVAE(VAE):
    """beta-VAE: reconstruction + beta * KL(q(z|x) || p(z))."""

    name = "beta_vae"
    Config = BetaVAEConfig

    def regularizer(self, kl: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor,
                    z: torch.Tensor, step: int) -> tuple[torch.Tensor, Losses]:
        return self.config.beta * kl, {}


@hookimpl
def disentangle_register_models() -> list[type[Model]]:
    return [BetaVAE]
