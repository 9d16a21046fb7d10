"""InfoGAN (Chen et al. 2016): a GAN whose latent codes are made informative about its images.

The generator sees noise ``z`` plus codes ``c``: categorical codes (one-hot) and continuous
codes drawn from U(-1, 1). An auxiliary head Q, sharing the discriminator's convolutional
trunk, predicts ``c`` from ``G(z, c)``; minimising Q's negative log-likelihood maximises a
variational lower bound on the mutual information I(c; G(z, c)). The representation scored by
the metrics is Q's output on real images: continuous means and the arg-max of each
categorical code.

Architecture (defaults for 64x64 images, after InfoGAN-CR's dSprites setting, built in
:mod:`~disentangle_plugins.models.nets`): G is FC 128, FC 4x4x64, then 4x4 stride-2
up-convolutions 64, 32, 32, C with batch norm and a sigmoid output; D/Q share convolutions
32, 32, 64, 64 (4x4, stride 2, leaky ReLU 0.2, spectral norm) and FC 128; D's head is FC 1,
Q's head FC 128 then the code outputs. Training follows :class:`GANBase` with the
information losses added to both players' losses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from disentangle import hookimpl
from disentangle.config import option
from disentangle.datasets import FactorDataset
from disentangle.models import Model, Representation, sweep
from disentangle_plugins.models.gan import GANBase, GANConfig


@dataclass(frozen=True)
class InfoGANConfig(GANConfig):
    """InfoGAN hyper-parameters: the GAN's plus the codes and their information losses."""

    noise_dim: int = option(5, "dimensions of the incompressible noise z ~ U(-1, 1)")
    categorical_sizes: tuple[int, ...] = option(
        (3,), "number of classes of each categorical code (empty: none)")
    continuous_dim: int = option(5, "number of continuous codes ~ U(-1, 1)")
    lambda_categorical: float = option(1.0, "weight of the categorical information loss")
    lambda_continuous: float = option(0.05, "weight of the continuous information loss")
    learn_variance: bool = option(
        False, "Q predicts a variance for continuous codes (else fixed at 1: half an MSE)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.continuous_dim < 0:
            raise ValueError("continuous_dim must be >= 0")
        if any(k < 2 for k in self.categorical_sizes):
            raise ValueError("each categorical code needs at least 2 classes")
        if not self.categorical_sizes and self.continuous_dim == 0:
            raise ValueError("InfoGAN needs at least one code (categorical or continuous)")


class InfoGAN(GANBase):
    """InfoGAN: categorical and continuous codes with a mutual-information lower bound."""

    name = "infogan"
    Config = InfoGANConfig
    default_steps = 2000

    def __init__(self, config: InfoGANConfig, dataset: FactorDataset, device: torch.device):
        self.cat_sizes = tuple(config.categorical_sizes)
        latent_dim = config.noise_dim + sum(self.cat_sizes) + config.continuous_dim
        q_dim = sum(self.cat_sizes) + config.continuous_dim * (2 if config.learn_variance else 1)
        super().__init__(config, dataset, device, latent_dim, q_dim)
        self._make_optimizers()

    @classmethod
    def dataset_defaults(cls, dataset: FactorDataset) -> dict[str, Any]:
        """One categorical code per categorical factor, sized like it (3 shapes on dSprites)."""
        sizes = tuple(
            dataset.factor_sizes[dataset.factor_names.index(name)]
            for name in dataset.categorical_factors)
        return {"categorical_sizes": sizes} if sizes else {}

    # -- codes -------------------------------------------------------------------------------

    def sample_latent(self, n: int, generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Noise, categorical classes ``[n, m]`` and continuous codes ``[n, d]`` (on CPU)."""
        noise = torch.rand(n, self.config.noise_dim, generator=generator) * 2 - 1
        classes = torch.stack(
            [torch.randint(0, k, (n,), generator=generator) for k in self.cat_sizes], dim=1
        ) if self.cat_sizes else torch.zeros(n, 0, dtype=torch.long)
        continuous = torch.rand(n, self.config.continuous_dim, generator=generator) * 2 - 1
        return noise, classes, continuous

    def latent_vector(self, noise: torch.Tensor, classes: torch.Tensor,
                      continuous: torch.Tensor) -> torch.Tensor:
        """The generator's input ``[z, one-hot(c_cat)..., c_cont]`` on the model's device."""
        one_hots = [F.one_hot(classes[:, i], k).float() for i, k in enumerate(self.cat_sizes)]
        return torch.cat([noise, *one_hots, continuous], dim=1).to(self.device)

    def split_q(self, q: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Q's output as (categorical logits per code, continuous means, log-variances)."""
        logits = list(torch.split(q[:, :sum(self.cat_sizes)], self.cat_sizes, dim=1)) \
            if self.cat_sizes else []
        rest = q[:, sum(self.cat_sizes):]
        d = self.config.continuous_dim
        mean = rest[:, :d]
        log_var = rest[:, d:] if self.config.learn_variance else torch.zeros_like(mean)
        return logits, mean, log_var

    def information_losses(self, q: torch.Tensor, classes: torch.Tensor,
                           continuous: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Negative log-likelihoods of the true codes under Q (categorical, continuous).

        The categorical term is the cross-entropy, so H(c) minus it is the lower bound on
        I(c_cat; G(z, c)). The continuous term is the Gaussian NLL without its constant.
        """
        logits, mean, log_var = self.split_q(q)
        classes, continuous = classes.to(q.device), continuous.to(q.device)
        cat = sum((F.cross_entropy(lg, classes[:, i]) for i, lg in enumerate(logits)),
                  q.new_zeros(()))
        cont = (0.5 * (continuous - mean) ** 2 * torch.exp(-log_var) + 0.5 * log_var
                ).sum(1).mean() if self.config.continuous_dim else q.new_zeros(())
        return cat, cont

    def code_loss(self, q: torch.Tensor | None, parts: tuple[torch.Tensor, ...]
                  ) -> tuple[torch.Tensor, dict[str, float]]:
        """The weighted information losses, and the bound on I(c_cat; G(z, c)) to log."""
        _, classes, continuous = parts
        cat, cont = self.information_losses(q, classes, continuous)
        logged = {}
        if self.cat_sizes:
            entropy = sum(math.log(k) for k in self.cat_sizes)
            logged["info_categorical"] = cat.item()
            logged["mi_bound_categorical"] = entropy - cat.item()
        if self.config.continuous_dim:
            logged["info_continuous"] = cont.item()
        cfg = self.config
        return cfg.lambda_categorical * cat + cfg.lambda_continuous * cont, logged

    # -- inference ---------------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> Representation:
        _, q = self.discriminator(images.to(self.device))
        logits, mean, _ = self.split_q(q)
        classes = torch.stack([lg.argmax(1) for lg in logits], dim=1) if logits else \
            torch.zeros(len(q), 0, dtype=torch.long)
        return Representation(mean.double().cpu().numpy(), classes.cpu().numpy())

    @torch.no_grad()
    def traversals(self, generator: torch.Generator, rows: int = 8,
                   steps: int = 9, span: float = 2.0) -> dict[str, torch.Tensor]:
        """A picture per code: rows share (z, other codes); columns vary this code only.

        Categorical codes take each of their classes; continuous codes sweep from ``-span``
        to ``span`` (beyond the training range [-1, 1], as in the paper's figures).
        """
        noise, classes, continuous = self.sample_latent(rows, generator)
        pictures = {}
        for i, k in enumerate(self.cat_sizes):
            latent = self.latent_vector(noise.repeat_interleave(k, 0),
                                        sweep(classes, i, torch.arange(k)),
                                        continuous.repeat_interleave(k, 0))
            pictures[f"categorical_{i}"] = self.generator(latent).cpu().view(
                rows, k, *self.image_shape)
        values = torch.linspace(-span, span, steps)
        for j in range(self.config.continuous_dim):
            latent = self.latent_vector(noise.repeat_interleave(steps, 0),
                                        classes.repeat_interleave(steps, 0),
                                        sweep(continuous, j, values))
            pictures[f"continuous_{j}"] = self.generator(latent).cpu().view(
                rows, steps, *self.image_shape)
        return pictures


@hookimpl
def disentangle_register_models() -> list[type[Model]]:
    return [InfoGAN]
