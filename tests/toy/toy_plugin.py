"""A third-party plugin, as a user would write one: a tiny dataset, a tiny model, and a GAN
built on the first-party GAN template (a latent type, ``latent_vector`` and one override).

The tests install it through a ``.dist-info`` folder on ``sys.path`` (what pip would write),
so it is discovered through the ``disentangle`` entry-point group like any other plugin.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

import disentangle
from disentangle.config import option
from disentangle.datasets import FactorDataset
from disentangle.models import Losses, Model, Representation
from disentangle_plugins.models.gan import GANBase, InverseScoredConfig

_PATTERNS = torch.tensor([
    [[1, 1, 1], [1, 1, 1], [1, 1, 1]],
    [[0, 1, 0], [1, 1, 1], [0, 1, 0]],
    [[1, 1, 1], [1, 0, 1], [1, 1, 1]],
], dtype=torch.float32)


class ToyBlobs(FactorDataset):
    """16x16 images of a 3x3 blob: pattern (3 kinds) at an (x, y) cell of a 7x7 grid."""

    name = "toy_blobs"
    factor_names = ("kind", "x", "y")
    factor_sizes = (3, 7, 7)
    image_shape = (1, 16, 16)
    categorical_factors = ("kind",)

    def images(self, factors: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        f = torch.as_tensor(self.check_factors(factors))
        out = torch.zeros(len(f), 1, 16, 16)
        rows = torch.arange(len(f))
        for dy in range(3):
            for dx in range(3):
                top, left = 2 * f[:, 2] + 1 + dy, 2 * f[:, 1] + 1 + dx
                out[rows, 0, top, left] = _PATTERNS[f[:, 0], dy, dx]
        return out


@dataclass(frozen=True)
class ToyConfig:
    latents: int = option(3, "code dimensions")
    lr: float = option(1e-2, "Adam learning rate")
    diverge_at: int = option(0, "from this (1-based) step on the loss is NaN; 0: never")
    fail_at: int = option(0, "at this (1-based) step train_step raises; 0: never")
    step_delay: float = option(0.0, "seconds to sleep in each step (to interrupt runs in tests)")
    encode_delay: float = option(0.0, "seconds to sleep in each encode (to interrupt "
                                      "evaluations in tests)")


class ToyAutoencoder(Model):
    """A linear autoencoder: the smallest model that trains, encodes and generates."""

    name = "toy_autoencoder"
    Config = ToyConfig
    default_steps = 30

    def __init__(self, config: ToyConfig, dataset: FactorDataset, device: torch.device):
        super().__init__(config, dataset, device)
        pixels = int(np.prod(self.image_shape))
        self.encoder = nn.Linear(pixels, config.latents)
        self.decoder = nn.Linear(config.latents, pixels)
        self.to(self.device)
        self.opt = torch.optim.Adam(self.parameters(), lr=config.lr)

    def train_step(self, images: torch.Tensor, factors: np.ndarray, step: int) -> Losses:
        x = images.to(self.device).flatten(1)
        noise = 0.01 * torch.randn_like(x)
        loss = ((torch.sigmoid(self.decoder(self.encoder(x + noise))) - x) ** 2).mean()
        if self.config.diverge_at and step + 1 >= self.config.diverge_at:
            loss = loss * float("nan")
        if self.config.fail_at and step + 1 == self.config.fail_at:
            raise RuntimeError("the toy model fails on purpose")
        time.sleep(self.config.step_delay)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"reconstruction": loss.detach()}

    def encode(self, images: torch.Tensor) -> Representation:
        time.sleep(self.config.encode_delay)
        codes = self.encoder(images.to(self.device).flatten(1))
        return Representation(codes.double().cpu().numpy(), np.zeros((len(codes), 0), np.int64))

    def generate(self, n: int, generator: torch.Generator) -> torch.Tensor:
        codes = torch.randn(n, self.config.latents, generator=generator).to(self.device)
        return torch.sigmoid(self.decoder(codes)).view(n, *self.image_shape).cpu()

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"adam": self.opt}


@dataclass
class Gaussian:
    """The toy GAN's latent: standard normal noise ``[n, noise_dim]``."""

    noise: torch.Tensor


class ToyGAN(GANBase):
    """A GAN on Gaussian noise, scored through the template's inverse encoder."""

    name = "toy_gan"
    Config = InverseScoredConfig
    default_steps = 20

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Gaussian:
        return Gaussian(torch.randn(n, self.config.noise_dim, generator=generator))

    def latent_vector(self, latent: Gaussian) -> torch.Tensor:
        return latent.noise.to(self.device)


@disentangle.hookimpl
def disentangle_register_datasets() -> list[type[FactorDataset]]:
    return [ToyBlobs]


@disentangle.hookimpl
def disentangle_register_models() -> list[type[Model]]:
    return [ToyAutoencoder, ToyGAN]
