"""The variational autoencoder (Kingma and Welling 2014) every VAE-family model here builds on.

The shared model is the reference study's (Locatello et al. 2019, "Challenging common
assumptions..."): a Gaussian encoder -- 4x4 stride-2 convolutions 32, 32, 64, 64 with ReLU,
a dense layer of 256, then the means and log-variances of 10 latents -- a standard normal
prior, and the mirrored decoder (dense 256, dense to a 4x4x64 map, up-convolutions 64, 32,
32, C) whose outputs are the logits of a Bernoulli likelihood per pixel. Adam with learning
rate 1e-4 (betas 0.9, 0.999), batch 64 (the runner's default).

The objective is ``reconstruction + regulariser``: the reconstruction term is the Bernoulli
negative log-likelihood summed over pixels, and the regulariser is the KL divergence of the
posterior from the prior for the plain VAE. Each other model (``beta_vae``,
``annealed_vae``, ``factor_vae``, ``beta_tcvae``, ``dip_vae_i``, ``dip_vae_ii``) is a
subclass in its own module that replaces :meth:`VAE.regularizer`. The representation scored
by the metrics is the posterior mean.

The stacks halve the image side once per ``channels`` entry, so the same model fits any
image whose side is divisible by 2^len(channels) (16x16 images with the default four layers
get a 1x1 smallest map instead of 4x4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from disentangle import hookimpl
from disentangle.config import option
from disentangle.datasets import FactorDataset
from disentangle.models import Losses, Model, Representation, sweep
from disentangle_plugins.models.nets import ConvEncoder, DeconvDecoder


@dataclass(frozen=True)
class VAEConfig:
    """Hyper-parameters of the shared VAE (the reference study's values)."""

    latent_dim: int = option(10, "number of latents (Gaussian posterior, N(0, I) prior)")
    channels: tuple[int, ...] = option(
        (32, 32, 64, 64), "encoder conv channels (one 4x4 stride-2 conv each; the decoder "
                          "mirrors them)")
    dense_dim: int = option(256, "width of the dense layer of encoder and decoder")
    lr: float = option(1e-4, "Adam learning rate of encoder and decoder")
    beta1: float = option(0.9, "Adam beta1 of encoder and decoder")
    beta2: float = option(0.999, "Adam beta2 of encoder and decoder")

    def __post_init__(self) -> None:
        if self.latent_dim < 1 or self.dense_dim < 1:
            raise ValueError("latent_dim and dense_dim must be >= 1")
        if not self.channels or min(self.channels) < 1:
            raise ValueError("channels must be a non-empty tuple of positive widths")
        if self.lr <= 0 or not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError("lr must be > 0 and Adam betas in [0, 1)")


def bernoulli_reconstruction(logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Negative Bernoulli log-likelihood of ``images`` under pixel ``logits``, per image ``[n]``."""
    return F.binary_cross_entropy_with_logits(logits, images, reduction="none").flatten(1).sum(1)


def gaussian_kl(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_var)) || N(0, 1)) for every entry (per sample and latent)."""
    return 0.5 * (mean ** 2 + log_var.exp() - log_var - 1)


class VAE(Model):
    """Variational autoencoder: Bernoulli decoder, Gaussian posterior, KL regulariser."""

    name = "vae"
    Config = VAEConfig
    #: a schedule of a few minutes on a laptop CPU
    #: (step times: benchmarks/results/baselines_dsprites.md)
    default_steps = 1000
    #: faster channels-last on the CPU (benchmarks/results/step_speed.txt)
    channels_last = True

    def __init__(self, config: VAEConfig, dataset: FactorDataset, device: torch.device):
        super().__init__(config, dataset, device)
        self.encoder = ConvEncoder(self.image_shape, config.channels, config.dense_dim,
                                   2 * config.latent_dim)
        self.decoder = DeconvDecoder(config.latent_dim, self.image_shape, config.channels,
                                     config.dense_dim)
        self.to(self.device)
        self.opt = torch.optim.Adam([*self.encoder.parameters(), *self.decoder.parameters()],
                                    lr=config.lr, betas=(config.beta1, config.beta2))

    def posterior(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Means and log-variances of q(z | x), each ``[n, latent_dim]``."""
        mean, log_var = self.encoder(images).chunk(2, dim=1)
        return mean, log_var

    def regularizer(self, kl: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor,
                    z: torch.Tensor, step: int) -> tuple[torch.Tensor, Losses]:
        """The term added to the reconstruction loss, and extra values to log.

        ``kl`` is the batch mean of KL(q(z|x) || p(z)); ``z`` the reparameterised samples.
        """
        return kl, {}

    def update_auxiliary(self, z: torch.Tensor) -> Losses:
        """Train networks other than encoder and decoder on this step's (detached) samples.

        Only FactorVAE has one (its latent discriminator); returns values to log.
        """
        return {}

    def train_step(self, images: torch.Tensor, factors: np.ndarray, step: int) -> Losses:
        x = images.to(self.device)
        mean, log_var = self.posterior(x)
        z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        reconstruction = bernoulli_reconstruction(self.decoder(z), x).mean()
        kl = gaussian_kl(mean, log_var).sum(1).mean()
        regularizer, logged = self.regularizer(kl, mean, log_var, z, step)
        loss = reconstruction + regularizer
        self.optimize(self.opt, loss)
        logged.update(self.update_auxiliary(z.detach()))
        return {"loss": loss.detach(), "reconstruction": reconstruction.detach(),
                "kl": kl.detach(), "elbo": -(reconstruction + kl).detach(), **logged}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"vae": self.opt}

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> Representation:
        mean, _ = self.posterior(images.to(self.device))
        return Representation(mean.double().cpu().numpy(), np.zeros((len(mean), 0), np.int64))

    def code_names(self) -> list[str]:
        return [f"latent_{j}" for j in range(self.config.latent_dim)]

    @torch.no_grad()
    def code_kl(self, images: torch.Tensor) -> np.ndarray:
        mean, log_var = self.posterior(images.to(self.device))
        return gaussian_kl(mean, log_var).float().mean(0).cpu().numpy()

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images (Bernoulli means, in [0, 1]) for latent vectors ``z``, on the CPU."""
        return torch.sigmoid(self.decoder(z.to(self.device))).cpu()

    @torch.no_grad()
    def generate(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.decode(torch.randn(n, self.config.latent_dim, generator=generator))

    @torch.no_grad()
    def generate_holding(self, n: int, code: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` decoded prior draws that share the value of latent ``code``."""
        z = torch.randn(n, self.config.latent_dim, generator=generator)
        z[:, code] = z[0, code]
        return self.decode(z)

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """The decoded posterior mean of each image (the code the metrics score)."""
        mean, _ = self.posterior(images.to(self.device))
        return self.decode(mean)

    @torch.no_grad()
    def traversals(self, generator: torch.Generator, rows: int = 8, steps: int = 9,
                   span: float = 2.0) -> dict[str, torch.Tensor]:
        """A picture per latent: rows start from prior draws; columns sweep this latent alone
        from ``-span`` to ``span`` prior standard deviations."""
        base = torch.randn(rows, self.config.latent_dim, generator=generator)
        values = torch.linspace(-span, span, steps)
        return {f"latent_{j}": self.decode(sweep(base, j, values)).view(
                    rows, steps, *self.image_shape)
                for j in range(self.config.latent_dim)}


@hookimpl
def disentangle_register_models() -> list[type[Model]]:
    return [VAE]
