"""InfoGAN (Chen et al. 2016): a GAN whose latent codes are made informative about its images.

The generator sees noise ``z`` plus codes ``c``: categorical codes (one-hot) and continuous
codes drawn from U(-1, 1). An auxiliary head Q, sharing the discriminator's convolutional
trunk, predicts ``c`` from ``G(z, c)``; minimising Q's negative log-likelihood maximises a
variational lower bound on the mutual information I(c; G(z, c)). The representation scored by
the metrics is Q's output on real images: continuous means and the arg-max of each
categorical code.

Architecture (defaults for 64x64 images, after InfoGAN-CR's dSprites setting): G is FC 128,
FC 4x4x64, then 4x4 stride-2 up-convolutions 64, 32, 32, C with batch norm and a sigmoid
output; D/Q share convolutions 32, 32, 64, 64 (4x4, stride 2, leaky ReLU 0.2, spectral
norm) and FC 128; D's head is FC 1, Q's head FC 128 then the code outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from disentangle import hookimpl
from disentangle.config import option
from disentangle.datasets import FactorDataset
from disentangle.models import Model, Representation


@dataclass(frozen=True)
class InfoGANConfig:
    """InfoGAN hyper-parameters."""

    noise_dim: int = option(5, "dimensions of the incompressible noise z ~ U(-1, 1)")
    categorical_sizes: tuple[int, ...] = option(
        (3,), "number of classes of each categorical code (empty: none)")
    continuous_dim: int = option(5, "number of continuous codes ~ U(-1, 1)")
    lambda_categorical: float = option(1.0, "weight of the categorical information loss")
    lambda_continuous: float = option(0.05, "weight of the continuous information loss")
    learn_variance: bool = option(
        False, "Q predicts a variance for continuous codes (else fixed at 1: half an MSE)")
    loss: Literal["standard", "hinge"] = option(
        "standard", "adversarial loss: non-saturating cross-entropy or hinge")
    spectral_norm: bool = option(True, "spectral normalisation on every D/Q layer")
    d_batchnorm: bool = option(False, "batch norm after D's hidden layers (paper's MNIST D)")
    d_channels: tuple[int, ...] = option(
        (32, 32, 64, 64), "D's conv channels (one 4x4 stride-2 conv each; G mirrors them)")
    fc_dim: int = option(128, "width of the fully connected layers of G, D and Q")
    leak: float = option(0.2, "negative slope of D's leaky ReLUs")
    lr_d: float = option(2e-3, "Adam learning rate of D and Q")
    lr_g: float = option(1e-3, "Adam learning rate of G")
    beta1: float = option(0.5, "Adam beta1")
    beta2: float = option(0.999, "Adam beta2")
    g_steps: int = option(1, "generator updates per discriminator update")

    def __post_init__(self) -> None:
        if self.noise_dim < 0 or self.continuous_dim < 0:
            raise ValueError("noise_dim and continuous_dim must be >= 0")
        if any(k < 2 for k in self.categorical_sizes):
            raise ValueError("each categorical code needs at least 2 classes")
        if not self.categorical_sizes and self.continuous_dim == 0:
            raise ValueError("InfoGAN needs at least one code (categorical or continuous)")
        if not self.d_channels or min(self.d_channels) < 1 or self.fc_dim < 1:
            raise ValueError("d_channels and fc_dim must be positive")
        if self.g_steps < 1 or min(self.lr_d, self.lr_g) <= 0:
            raise ValueError("g_steps must be >= 1 and learning rates > 0")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError("Adam betas must lie in [0, 1)")


def _maybe_sn(layer: nn.Module, enabled: bool) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(layer) if enabled else layer


class Generator(nn.Module):
    """Maps ``[z, c]`` to an image through FC layers and stride-2 up-convolutions."""

    def __init__(self, in_dim: int, image_shape: tuple[int, int, int], channels: tuple[int, ...],
                 fc_dim: int):
        super().__init__()
        c_out, height, width = image_shape
        n = len(channels)
        self.start = (channels[-1], height >> n, width >> n)
        self.fc = nn.Sequential(
            nn.Linear(in_dim, fc_dim), nn.BatchNorm1d(fc_dim), nn.ReLU(),
            nn.Linear(fc_dim, math.prod(self.start)), nn.BatchNorm1d(math.prod(self.start)),
            nn.ReLU(),
        )
        layers: list[nn.Module] = []
        widths = list(reversed(channels)) + [c_out]
        for i in range(n):
            layers.append(nn.ConvTranspose2d(widths[i], widths[i + 1], 4, 2, 1))
            if i < n - 1:
                layers += [nn.BatchNorm2d(widths[i + 1]), nn.ReLU()]
        self.deconv = nn.Sequential(*layers)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.deconv(self.fc(latent).view(-1, *self.start)))


class Discriminator(nn.Module):
    """Shared conv trunk with a real/fake head (``D``) and a code head (``Q``)."""

    def __init__(self, image_shape: tuple[int, int, int], config: InfoGANConfig, q_dim: int):
        super().__init__()
        c_in, height, width = image_shape
        sn, bn = config.spectral_norm, config.d_batchnorm
        layers: list[nn.Module] = []
        widths = (c_in, *config.d_channels)
        for i in range(len(config.d_channels)):
            layers.append(_maybe_sn(nn.Conv2d(widths[i], widths[i + 1], 4, 2, 1), sn))
            if bn and i > 0:
                layers.append(nn.BatchNorm2d(widths[i + 1]))
            layers.append(nn.LeakyReLU(config.leak))
        n = len(config.d_channels)
        flat = config.d_channels[-1] * (height >> n) * (width >> n)
        layers += [nn.Flatten(), _maybe_sn(nn.Linear(flat, config.fc_dim), sn)]
        if bn:
            layers.append(nn.BatchNorm1d(config.fc_dim))
        layers.append(nn.LeakyReLU(config.leak))
        self.trunk = nn.Sequential(*layers)
        self.d_head = _maybe_sn(nn.Linear(config.fc_dim, 1), sn)
        self.q_head = nn.Sequential(
            _maybe_sn(nn.Linear(config.fc_dim, config.fc_dim), sn), nn.LeakyReLU(config.leak),
            _maybe_sn(nn.Linear(config.fc_dim, q_dim), sn),
        )

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.trunk(images)
        return self.d_head(features).squeeze(1), self.q_head(features)


def adversarial_losses(kind: str, real: torch.Tensor | None, fake: torch.Tensor,
                       for_generator: bool) -> torch.Tensor:
    """The discriminator's loss on (real, fake) logits, or the generator's on fake logits."""
    if for_generator:
        return -fake.mean() if kind == "hinge" else F.softplus(-fake).mean()
    assert real is not None
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    return F.softplus(-real).mean() + F.softplus(fake).mean()


class InfoGAN(Model):
    """InfoGAN: categorical and continuous codes with a mutual-information lower bound."""

    name = "infogan"
    Config = InfoGANConfig
    default_steps = 2000

    def __init__(self, config: InfoGANConfig, dataset: FactorDataset, device: torch.device):
        super().__init__(config, dataset, device)
        n_layers = len(config.d_channels)
        _, height, width = self.image_shape
        if height % (1 << n_layers) or width % (1 << n_layers):
            raise ValueError(
                f"image size {height}x{width} is not divisible by 2^{n_layers} "
                f"(one halving per d_channels entry); set d_channels to fewer layers")
        self.cat_sizes = tuple(config.categorical_sizes)
        self.latent_dim = config.noise_dim + sum(self.cat_sizes) + config.continuous_dim
        q_dim = sum(self.cat_sizes) + config.continuous_dim * (2 if config.learn_variance else 1)
        self.generator = Generator(self.latent_dim, self.image_shape, config.d_channels,
                                   config.fc_dim)
        self.discriminator = Discriminator(self.image_shape, config, q_dim)
        self._init_weights()
        self.to(self.device)
        betas = (config.beta1, config.beta2)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr_d, betas=betas)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr_g, betas=betas)

    def _init_weights(self) -> None:
        # N(0, 0.02) weights as in the official InfoGAN code; batch-norm scales around 1.
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                weight = getattr(module, "parametrizations", None)
                target = weight.weight.original if weight is not None else module.weight
                nn.init.normal_(target, 0.0, 0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)

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

    # -- training ----------------------------------------------------------------------------

    def train_step(self, images: torch.Tensor, factors: np.ndarray, step: int) -> dict[str, float]:
        cfg = self.config
        n = images.shape[0]
        real = images.to(self.device)

        noise, classes, continuous = self.sample_latent(n)
        with torch.no_grad():
            fake = self.generator(self.latent_vector(noise, classes, continuous))
        real_logit, _ = self.discriminator(real)
        fake_logit, q_fake = self.discriminator(fake)
        d_adv = adversarial_losses(cfg.loss, real_logit, fake_logit, for_generator=False)
        d_cat, d_cont = self.information_losses(q_fake, classes, continuous)
        d_loss = d_adv + cfg.lambda_categorical * d_cat + cfg.lambda_continuous * d_cont
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()

        for _ in range(cfg.g_steps):
            noise, classes, continuous = self.sample_latent(n)
            fake = self.generator(self.latent_vector(noise, classes, continuous))
            fake_logit, q_fake = self.discriminator(fake)
            g_adv = adversarial_losses(cfg.loss, None, fake_logit, for_generator=True)
            info_cat, info_cont = self.information_losses(q_fake, classes, continuous)
            g_loss = g_adv + cfg.lambda_categorical * info_cat + cfg.lambda_continuous * info_cont
            self.opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            self.opt_g.step()

        losses = {"d_loss": d_loss.item(), "g_loss": g_adv.item(),
                  "d_real": torch.sigmoid(real_logit).mean().item()}
        if self.cat_sizes:
            entropy = sum(math.log(k) for k in self.cat_sizes)
            losses["info_categorical"] = info_cat.item()
            losses["mi_bound_categorical"] = entropy - info_cat.item()
        if cfg.continuous_dim:
            losses["info_continuous"] = info_cont.item()
        return losses

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"d": self.opt_d, "g": self.opt_g}

    # -- inference ---------------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> Representation:
        _, q = self.discriminator(images.to(self.device))
        logits, mean, _ = self.split_q(q)
        classes = torch.stack([lg.argmax(1) for lg in logits], dim=1) if logits else \
            torch.zeros(len(q), 0, dtype=torch.long)
        return Representation(mean.double().cpu().numpy(), classes.cpu().numpy())

    @torch.no_grad()
    def generate(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.generator(self.latent_vector(*self.sample_latent(n, generator))).cpu()

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
            cls = classes.repeat_interleave(k, 0)
            cls[:, i] = torch.arange(k).repeat(rows)
            latent = self.latent_vector(noise.repeat_interleave(k, 0), cls,
                                        continuous.repeat_interleave(k, 0))
            pictures[f"categorical_{i}"] = self.generator(latent).cpu().view(
                rows, k, *self.image_shape)
        values = torch.linspace(-span, span, steps)
        for j in range(self.config.continuous_dim):
            cont = continuous.repeat_interleave(steps, 0)
            cont[:, j] = values.repeat(rows)
            latent = self.latent_vector(noise.repeat_interleave(steps, 0),
                                        classes.repeat_interleave(steps, 0), cont)
            pictures[f"continuous_{j}"] = self.generator(latent).cpu().view(
                rows, steps, *self.image_shape)
        return pictures


@hookimpl
def disentangle_register_models() -> list[type[Model]]:
    return [InfoGAN]
