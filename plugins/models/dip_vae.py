"""DIP-VAE (Kumar et al. 2018): the VAE plus a push of the aggregate posterior's covariance
towards the identity.

DIP-VAE-I penalises the covariance of the posterior means over the batch; DIP-VAE-II that
of the aggregate posterior, i.e. the covariance of the means plus the mean posterior
variance. The penalty is ``lambda_od * sum_{i != j} C_ij^2 + lambda_d * sum_i (C_ii - 1)^2``
with ``lambda_d = lambda_d_factor * lambda_od``, added to the VAE's loss. Reference study:
lambda_od in {1, 2, 5, 10, 20, 50} (default 10, a member of the grid), lambda_d_factor 10
for type I and 1 for type II.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from disentangle import hookimpl
from disentangle.config import option
from disentangle.models import Losses, Model
from disentangle_plugins.models.vae import VAE, VAEConfig


@dataclass(frozen=True)
class DIPVAEIConfig(VAEConfig):
    """The VAE's hyper-parameters plus the covariance penalty's weights."""

    lambda_od: float = option(10.0, "weight of the off-diagonal covariance penalty "
                                    "(reference grid 1, 2, 5, 10, 20, 50)")
    lambda_d_factor: float = option(10.0, "weight of the diagonal penalty, in units of "
                                          "lambda_od")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lambda_od < 0 or self.lambda_d_factor < 0:
            raise ValueError("lambda_od and lambda_d_factor must be >= 0")


@dataclass(frozen=True)
class DIPVAEIIConfig(DIPVAEIConfig):
    """DIP-VAE-II's defaults: the diagonal weighted like the off-diagonal."""

    lambda_d_factor: float = option(1.0, "weight of the diagonal penalty, in units of "
                                         "lambda_od")


def covariance(x: torch.Tensor) -> torch.Tensor:
    """Covariance ``[d, d]`` of the rows of ``x`` ``[n, d]`` (normalised by n, not n - 1)."""
    centred = x - x.mean(0, keepdim=True)
    return centred.T @ centred / len(x)


def dip_penalty(cov: torch.Tensor, lambda_od: float, lambda_d: float) -> torch.Tensor:
    """How far ``cov`` is from the identity: weighted squares of off-diagonal entries and of
    diagonal entries minus 1."""
    diagonal = torch.diagonal(cov)
    off_diagonal = cov - torch.diag(diagonal)
    return lambda_od * (off_diagonal ** 2).sum() + lambda_d * ((diagonal - 1) ** 2).sum()


class DIPVAEI(VAE):
    """DIP-VAE-I: reconstruction + KL + penalty on the covariance of the posterior means."""

    name = "dip_vae_i"
    Config = DIPVAEIConfig

    def target_covariance(self, mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
        """The covariance the penalty pushes towards the identity."""
        return covariance(mean)

    def regularizer(self, kl: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor,
                    z: torch.Tensor, step: int) -> tuple[torch.Tensor, Losses]:
        cfg = self.config
        penalty = dip_penalty(self.target_covariance(mean, log_var), cfg.lambda_od,
                              cfg.lambda_d_factor * cfg.lambda_od)
        return kl + penalty, {"dip_penalty": penalty.detach()}


class DIPVAEII(DIPVAEI):
    """DIP-VAE-II: as DIP-VAE-I, on the aggregate posterior's covariance."""

    name = "dip_vae_ii"
    Config = DIPVAEIIConfig

    def target_covariance(self, mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
        return covariance(mean) + torch.diag(log_var.exp().mean(0))


@hookimpl
def disentangle_register_models() -> list[type[Model]]:
    return [DIPVAEI, DIPVAEII]
