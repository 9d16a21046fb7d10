"""AnnealedVAE (Burgess et al. 2018): the KL term is held near a capacity that grows linearly.

The regulariser is ``gamma * |KL - C(t)|`` with ``C(t) = c_max * min(1, t / capacity_steps)``:
the encoder may carry ``C(t)`` nats about the image, and that budget opens slowly so the
most useful factors are encoded first. Reference study: gamma 1000, c_max in {5, 10, 25, 50,
75, 100} (default 25, a member of the grid), capacity reached after 100,000 steps. On a
short schedule the capacity stays small (``c_max * steps / capacity_steps``); set
``capacity_steps`` to the run's length to open the whole budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from disentangle import hookimpl
from disentangle.config import option
from disentangle.models import Losses, Model
from disentangle_plugins.models.vae import VAE, VAEConfig


@dataclass(frozen=True)
class AnnealedVAEConfig(VAEConfig):
    """The VAE's hyper-parameters plus the capacity schedule."""

    gamma: float = option(1000.0, "weight of |KL - capacity|")
    c_max: float = option(25.0, "final capacity in nats (reference grid 5, 10, 25, 50, 75, 100)")
    capacity_steps: int = option(100_000, "steps over which the capacity grows from 0 to c_max")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.gamma < 0 or self.c_max < 0 or self.capacity_steps < 1:
            raise ValueError("gamma and c_max must be >= 0 and capacity_steps >= 1")


def capacity(c_max: float, step: int, capacity_steps: int) -> float:
    """The capacity at ``step``: linear from 0 to ``c_max`` over ``capacity_steps``, then flat."""
    return c_max * min(1.0, step / capacity_steps)


class AnnealedVAE(VAE):
    """AnnealedVAE: reconstruction + gamma * |KL - C(step)|."""

    name = "annealed_vae"
    Config = AnnealedVAEConfig

    def regularizer(self, kl: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor,
                    z: torch.Tensor, step: int) -> tuple[torch.Tensor, Losses]:
        cfg = self.config
        c = capacity(cfg.c_max, step, cfg.capacity_steps)
        return cfg.gamma * (kl - c).abs(), {"capacity": c}


@hookimpl
def disentangle_register_models() -> list[type[Model]]:
    return [AnnealedVAE]
