"""InfoGAN (Chen et al. 2016): a GAN whose latent codes are made informative about its images.

The generator sees noise ``z`` plus codes ``c``: categorical codes (one-hot) and continuous
codes drawn from U(-1, 1). An auxiliary head Q, sharing the discriminator's convolutional
trunk, predicts ``c`` from ``G(z, c)``; minimising Q's negative log-likelihood maximises a
variational lower bound on the mutual information I(c; G(z, c)): for a categorical code the
bound is H(c) minus Q's cross-entropy, for a continuous code H(U(-1, 1)) = log 2 minus Q's
Gaussian negative log-likelihood. The representation scored by the metrics is Q's output on
real images: continuous means and the arg-max of each categorical code.

The layer layout is one family: G is FC, FC to a small feature map, then 4x4 stride-2
up-convolutions; D/Q share 4x4 stride-2 convolutions and an FC layer; D's head is FC 1 and
Q's head FC then the code outputs. ``arch`` picks a preset of sizes and training settings
(any of them can still be set one by one), chosen from the image size by default:

* ``mnist`` (28x28): the paper's MNIST setting. G: FC 1024, FC 7x7x128, up-conv 64, up-conv 1;
  D/Q: conv 64, conv 128, FC 1024; Q head FC 128; batch norm after every hidden layer but
  D's first; 62 noise dimensions, one 10-way and two continuous codes; Adam with 2e-4 for D
  and 1e-3 for G and Q; lambda 1; Q's variance fixed at 1 as in the official code.
* ``digits`` (up to 16x16, e.g. scikit-learn's 8x8 digits): the MNIST networks on a
  smaller map (G's FC 2x2x128 for 8x8 images), 16 noise dimensions instead of 62 and
  lambda 0.1 for the continuous codes: on 8x8 digits the paper's 62 dimensions and
  lambda 1 let noise and continuous codes carry digit identity, and the 10-way code
  classified the digits worse (see benchmarks/results/infogan_digits.txt).
* ``dsprites`` (64x64 and other multiples of 16): InfoGAN-CR's dSprites setting. G: FC 128,
  FC 4x4x64, up-convs 64, 32, 32, 1 (leaky ReLU 0.2, batch norm); D/Q: conv 32, 32, 64, 64,
  FC 128, spectral norm everywhere, no batch norm; Q head FC 128; 5 continuous codes with
  lambda 0.05 and 5 noise dimensions; Adam 2e-3 for D and Q, 1e-3 for G; two G updates per
  D update.
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

#: the settings each ``arch`` preset gives to the options left unset (None)
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "mnist": {
        "noise_dim": 62, "categorical_sizes": (10,), "continuous_dim": 2,
        "lambda_continuous": 1.0, "spectral_norm": False, "batchnorm": True,
        "d_channels": (64, 128), "fc_dim": 1024, "q_dim": 128, "leak": 0.1, "g_leak": 0.0,
        "lr_d": 2e-4, "lr_g": 1e-3, "lr_q": 1e-3, "g_steps": 1,
    },
    "digits": {
        "noise_dim": 16, "categorical_sizes": (10,), "continuous_dim": 2,
        "lambda_continuous": 0.1, "spectral_norm": False, "batchnorm": True,
        "d_channels": (64, 128), "fc_dim": 1024, "q_dim": 128, "leak": 0.1, "g_leak": 0.0,
        "lr_d": 2e-4, "lr_g": 1e-3, "lr_q": 1e-3, "g_steps": 1,
    },
    "dsprites": {
        "noise_dim": 5, "categorical_sizes": (), "continuous_dim": 5,
        "lambda_continuous": 0.05, "spectral_norm": True, "batchnorm": False,
        "d_channels": (32, 32, 64, 64), "fc_dim": 128, "q_dim": 128, "leak": 0.2,
        "g_leak": 0.2, "lr_d": 2e-3, "lr_g": 1e-3, "lr_q": 2e-3, "g_steps": 2,
    },
}

_PRESET = "default: the arch preset's"


def architecture_for(image_shape: tuple[int, ...]) -> str:
    """The preset that fits an image size: 28x28 and sizes not divisible by 16 get the
    MNIST layout, up to 16x16 the digits layout, larger multiples of 16 the dSprites one."""
    _, height, width = image_shape
    if max(height, width) <= 16:
        return "digits"
    if height % 16 or width % 16:
        return "mnist"
    return "dsprites"


@dataclass(frozen=True)
class InfoGANConfig:
    """InfoGAN hyper-parameters; options left at None take the ``arch`` preset's value."""

    arch: Literal["mnist", "digits", "dsprites"] = option(
        "dsprites", "preset of layer sizes and training settings (default: by image size)")
    noise_dim: int | None = option(
        None, f"dimensions of the incompressible noise z ~ U(-1, 1) ({_PRESET})")
    categorical_sizes: tuple[int, ...] | None = option(
        None, "number of classes of each categorical code (empty: none; "
              "default: one per categorical factor of the dataset)")
    continuous_dim: int | None = option(
        None, f"number of continuous codes ~ U(-1, 1) ({_PRESET})")
    lambda_categorical: float = option(1.0, "weight of the categorical information loss")
    lambda_continuous: float | None = option(
        None, f"weight of the continuous information loss ({_PRESET})")
    learn_variance: bool = option(
        False, "Q predicts a variance for continuous codes (else fixed at 1, as in the "
               "official code)")
    loss: Literal["standard", "hinge"] = option(
        "standard", "adversarial loss: non-saturating cross-entropy or hinge")
    spectral_norm: bool | None = option(
        None, f"spectral normalisation on every D/Q layer ({_PRESET})")
    batchnorm: bool | None = option(
        None, f"batch norm after D's hidden layers but the first, and in Q's head; G always "
              f"has it ({_PRESET})")
    d_channels: tuple[int, ...] | None = option(
        None, f"D's conv channels, one 4x4 stride-2 conv each; G mirrors them ({_PRESET})")
    fc_dim: int | None = option(None, f"width of the FC layer of G and of D's trunk ({_PRESET})")
    q_dim: int | None = option(None, f"width of Q's hidden FC layer ({_PRESET})")
    leak: float | None = option(None, f"negative slope of D's leaky ReLUs ({_PRESET})")
    g_leak: float | None = option(
        None, f"negative slope of G's up-convolution activations, 0 for ReLU ({_PRESET})")
    lr_d: float | None = option(None, f"Adam learning rate of D and the shared trunk ({_PRESET})")
    lr_g: float | None = option(None, f"Adam learning rate of G ({_PRESET})")
    lr_q: float | None = option(None, f"Adam learning rate of Q's head ({_PRESET})")
    beta1: float = option(0.5, "Adam beta1")
    beta2: float = option(0.999, "Adam beta2")
    g_steps: int | None = option(
        None, f"generator updates per discriminator update ({_PRESET})")

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown arch {self.arch!r}; choose one of "
                             f"{', '.join(ARCHITECTURES)}")
        for key, value in ARCHITECTURES[self.arch].items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)
        if self.noise_dim < 0 or self.continuous_dim < 0:
            raise ValueError("noise_dim and continuous_dim must be >= 0")
        if any(k < 2 for k in self.categorical_sizes):
            raise ValueError("each categorical code needs at least 2 classes")
        if not self.categorical_sizes and self.continuous_dim == 0:
            raise ValueError("InfoGAN needs at least one code (categorical or continuous)")
        if not self.d_channels or min(self.d_channels) < 1 or min(self.fc_dim, self.q_dim) < 1:
            raise ValueError("d_channels, fc_dim and q_dim must be positive")
        if self.g_steps < 1 or min(self.lr_d, self.lr_g, self.lr_q) <= 0:
            raise ValueError("g_steps must be >= 1 and learning rates > 0")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError("Adam betas must lie in [0, 1)")


def _maybe_sn(layer: nn.Module, enabled: bool) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(layer) if enabled else layer


def _activation(leak: float) -> nn.Module:
    return nn.LeakyReLU(leak) if leak > 0 else nn.ReLU()


class Generator(nn.Module):
    """Maps ``[z, c]`` to an image through two FC layers and stride-2 up-convolutions.

    The feature map after the FC layers has ``channels[-1]`` channels at the image size
    halved once per up-convolution; the up-convolutions mirror D's ``channels``.
    """

    def __init__(self, in_dim: int, image_shape: tuple[int, int, int], channels: tuple[int, ...],
                 fc_dim: int, leak: float = 0.0):
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
                layers += [nn.BatchNorm2d(widths[i + 1]), _activation(leak)]
        self.deconv = nn.Sequential(*layers)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.deconv(self.fc(latent).view(-1, *self.start)))


class Discriminator(nn.Module):
    """Shared conv trunk with a real/fake head (``D``) and a code head (``Q``)."""

    def __init__(self, image_shape: tuple[int, int, int], config: InfoGANConfig, q_out: int):
        super().__init__()
        c_in, height, width = image_shape
        sn, bn = config.spectral_norm, config.batchnorm
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
        q_layers = [_maybe_sn(nn.Linear(config.fc_dim, config.q_dim), sn)]
        if bn:
            q_layers.append(nn.BatchNorm1d(config.q_dim))
        q_layers += [nn.LeakyReLU(config.leak), _maybe_sn(nn.Linear(config.q_dim, q_out), sn)]
        self.q_head = nn.Sequential(*q_layers)

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
        q_out = sum(self.cat_sizes) + config.continuous_dim * (2 if config.learn_variance else 1)
        self.generator = Generator(self.latent_dim, self.image_shape, config.d_channels,
                                   config.fc_dim, config.g_leak)
        self.discriminator = Discriminator(self.image_shape, config, q_out)
        self._init_weights()
        self.to(self.device)
        betas = (config.beta1, config.beta2)
        # D's trunk and head learn at lr_d, Q's head at lr_q; both minimise the information
        # loss on fakes, so it also shapes the shared trunk. G has its own optimiser.
        d = self.discriminator
        self.opt_d = torch.optim.Adam([
            {"params": [*d.trunk.parameters(), *d.d_head.parameters()], "lr": config.lr_d},
            {"params": d.q_head.parameters(), "lr": config.lr_q},
        ], betas=betas)
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
        """The ``arch`` preset that fits the image size, and one categorical code per
        categorical factor, sized like it (3 shapes on dSprites, 10 digits on MNIST)."""
        defaults: dict[str, Any] = {"arch": architecture_for(dataset.image_shape)}
        sizes = tuple(
            dataset.factor_sizes[dataset.factor_names.index(name)]
            for name in dataset.categorical_factors)
        if sizes:
            defaults["categorical_sizes"] = sizes
        return defaults

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

        Both are summed over codes and averaged over the batch. The categorical term is the
        cross-entropy, so H(c) minus it is the lower bound on I(c_cat; G(z, c)). The
        continuous term is the full Gaussian NLL (constant included), so ``d log 2`` minus
        it is the bound for ``d`` codes uniform on [-1, 1].
        """
        logits, mean, log_var = self.split_q(q)
        classes, continuous = classes.to(q.device), continuous.to(q.device)
        cat = sum((F.cross_entropy(lg, classes[:, i]) for i, lg in enumerate(logits)),
                  q.new_zeros(()))
        cont = (0.5 * (continuous - mean) ** 2 * torch.exp(-log_var)
                + 0.5 * (log_var + math.log(2 * math.pi))
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
            if cfg.learn_variance:
                # with the variance fixed at 1 the bound cannot exceed log 2 - log(2 pi) / 2 < 0
                # per code, so it is only worth reading when Q learns the variance
                losses["mi_bound_continuous"] = cfg.continuous_dim * math.log(2) - info_cont.item()
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
        """Pictures as in the paper's figures: one per code, that code varying along rows.

        ``categorical_<i>``: each row is one random draw of noise and the other codes,
        the columns take each class of code ``i``. ``continuous_<j>``: code ``j`` sweeps
        from ``-span`` to ``span`` (beyond the training range [-1, 1], as in the paper)
        while the other continuous codes stay at 0; with a categorical code, row ``k``
        shows class ``k`` of the first one and all rows share one noise draw, otherwise
        each of the ``rows`` rows has its own noise.
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
        if self.cat_sizes:
            classes = classes[:1].repeat(self.cat_sizes[0], 1)
            classes[:, 0] = torch.arange(self.cat_sizes[0])
            noise = noise[:1].expand(self.cat_sizes[0], -1)
        n_rows = len(classes)
        values = torch.linspace(-span, span, steps)
        for j in range(self.config.continuous_dim):
            cont = torch.zeros(n_rows * steps, self.config.continuous_dim)
            cont[:, j] = values.repeat(n_rows)
            latent = self.latent_vector(noise.repeat_interleave(steps, 0),
                                        classes.repeat_interleave(steps, 0), cont)
            pictures[f"continuous_{j}"] = self.generator(latent).cpu().view(
                n_rows, steps, *self.image_shape)
        return pictures


@hookimpl
def disentangle_register_models() -> list[type[Model]]:
    return [InfoGAN]
