"""A plain GAN (Goodfellow et al. 2014) with InfoGAN's networks, and the GAN training template.

:class:`GANBase` holds what every GAN here shares: the generator and discriminator of
:mod:`~disentangle_plugins.models.nets`, their Adam optimisers, and one training step (a
discriminator update, then ``g_steps`` generator updates). Subclasses choose the latent
vector and may add a loss on the discriminator's code head (InfoGAN's mutual-information
term).

The networks are one layer family: G is FC, FC to a small feature map, then 4x4 stride-2
up-convolutions; D shares 4x4 stride-2 convolutions and an FC layer with the code head.
``arch`` picks a preset of sizes and training settings (any of them can still be set one by
one), chosen from the image size by default (:func:`architecture_for`):

* ``mnist`` (28x28): the InfoGAN paper's MNIST setting. G: FC 1024, FC 7x7x128, up-conv 64,
  up-conv 1; D: conv 64, conv 128, FC 1024; batch norm after every hidden layer but D's
  first; Adam with 2e-4 for D and 1e-3 for G.
* ``digits`` (up to 16x16, e.g. scikit-learn's 8x8 digits): the MNIST networks on a
  smaller map (G's FC 2x2x128 for 8x8 images); InfoGAN's codes differ (see its module).
* ``dsprites`` (64x64 and other multiples of 16): InfoGAN-CR's dSprites setting. G: FC 128,
  FC 4x4x64, up-convs 64, 32, 32, 1 (leaky ReLU 0.2, batch norm); D: conv 32, 32, 64, 64,
  FC 128, spectral norm everywhere, no batch norm; Adam 2e-3 for D, 1e-3 for G; two G updates
  per D update.

:class:`GAN` is that template with nothing but noise ``z ~ U(-1, 1)``: the baseline that
shows what adversarial training alone gives. It has no encoder, so it is scored through an
inverse encoder fitted on its own samples before each evaluation (the protocol is described
in :mod:`~disentangle_plugins.models.inverse`); its representation is the predicted ``z``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from disentangle import hookimpl
from disentangle.config import option
from disentangle.datasets import FactorDataset
from disentangle.models import Model, Representation, eval_mode, sweep
from disentangle_plugins.models.inverse import InverseEncoder, InverseEncoderConfig
from disentangle_plugins.models.nets import (
    Discriminator,
    Generator,
    adversarial_loss,
    init_gan_weights,
)

#: the settings each ``arch`` preset gives to the network and training options left unset
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "mnist": {
        "spectral_norm": False, "batchnorm": True, "d_channels": (64, 128), "fc_dim": 1024,
        "leak": 0.1, "g_leak": 0.0, "lr_d": 2e-4, "lr_g": 1e-3, "g_steps": 1,
    },
    "digits": {
        "spectral_norm": False, "batchnorm": True, "d_channels": (64, 128), "fc_dim": 1024,
        "leak": 0.1, "g_leak": 0.0, "lr_d": 2e-4, "lr_g": 1e-3, "g_steps": 1,
    },
    "dsprites": {
        "spectral_norm": True, "batchnorm": False, "d_channels": (32, 32, 64, 64),
        "fc_dim": 128, "leak": 0.2, "g_leak": 0.2, "lr_d": 2e-3, "lr_g": 1e-3, "g_steps": 2,
    },
}

#: the help suffix of options whose default comes from the preset
PRESET = "default: the arch preset's"


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
class GANConfig:
    """Hyper-parameters shared by every GAN here; options left at None take the ``arch``
    preset's value (subclasses extend :attr:`PRESETS` with their own options)."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = ARCHITECTURES

    arch: Literal["mnist", "digits", "dsprites"] = option(
        "dsprites", "preset of layer sizes and training settings (default: by image size)")
    noise_dim: int = option(10, "dimensions of the noise z ~ U(-1, 1)")
    loss: Literal["standard", "hinge"] = option(
        "standard", "adversarial loss: non-saturating cross-entropy or hinge")
    spectral_norm: bool | None = option(
        None, f"spectral normalisation on every D layer ({PRESET})")
    batchnorm: bool | None = option(
        None, f"batch norm after D's hidden layers but the first (and in Q's head, if any); "
              f"G always has it ({PRESET})")
    d_channels: tuple[int, ...] | None = option(
        None, f"D's conv channels, one 4x4 stride-2 conv each; G mirrors them ({PRESET})")
    fc_dim: int | None = option(None, f"width of the FC layer of G and of D's trunk ({PRESET})")
    leak: float | None = option(None, f"negative slope of D's leaky ReLUs ({PRESET})")
    g_leak: float | None = option(
        None, f"negative slope of G's up-convolution activations, 0 for ReLU ({PRESET})")
    lr_d: float | None = option(None, f"Adam learning rate of D and the shared trunk ({PRESET})")
    lr_g: float | None = option(None, f"Adam learning rate of G ({PRESET})")
    beta1: float = option(0.5, "Adam beta1")
    beta2: float = option(0.999, "Adam beta2")
    g_steps: int | None = option(
        None, f"generator updates per discriminator update ({PRESET})")

    def __post_init__(self) -> None:
        if self.arch not in self.PRESETS:
            raise ValueError(f"unknown arch {self.arch!r}; choose one of "
                             f"{', '.join(self.PRESETS)}")
        for key, value in self.PRESETS[self.arch].items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)
        if self.noise_dim < 0:
            raise ValueError("noise_dim must be >= 0")
        if not self.d_channels or min(self.d_channels) < 1 or self.fc_dim < 1:
            raise ValueError("d_channels and fc_dim must be positive")
        if self.g_steps < 1 or min(self.lr_d, self.lr_g) <= 0:
            raise ValueError("g_steps must be >= 1 and learning rates > 0")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError("Adam betas must lie in [0, 1)")


class GANBase(Model):
    """Generator, discriminator (with an optional code head ``Q``) and the training step.

    Subclasses implement :meth:`sample_latent` (the parts of the latent vector, on CPU) and
    :meth:`latent_vector` (the generator's input from those parts), and may override
    :meth:`code_loss` (a loss on Q's output for the parts, added to both players' losses).
    Conditional GANs also tell D what it judges: :meth:`real_condition` and
    :meth:`fake_condition` give the condition (the class labels) of real and generated
    images, :meth:`discriminate` uses it, and :meth:`real_code_loss` adds a loss on Q's
    output for real images to D's loss.

    ``d_extra_channels`` widens D's input beyond the image's channels (for conditions given
    as extra channels); ``projection_classes`` makes D a projection discriminator.
    """

    def __init__(self, config: GANConfig, dataset: FactorDataset, device: torch.device,
                 latent_dim: int, q_out: int = 0, q_dim: int = 0, d_extra_channels: int = 0,
                 projection_classes: int = 0):
        super().__init__(config, dataset, device)
        self.latent_dim = latent_dim
        self.generator = Generator(latent_dim, self.image_shape, config.d_channels,
                                   config.fc_dim, config.g_leak)
        channels, height, width = self.image_shape
        self.discriminator = Discriminator(
            (channels + d_extra_channels, height, width), config.d_channels, config.fc_dim,
            q_out, q_dim, leak=config.leak, spectral_norm=config.spectral_norm,
            batchnorm=config.batchnorm, projection_classes=projection_classes)
        init_gan_weights(self.generator)
        init_gan_weights(self.discriminator)

    def _make_optimizers(self, lr_q: float | None = None) -> None:
        """Move to the device and create the Adam optimisers (call at the end of __init__).

        D's trunk and heads (a projection's class embedding included) learn at ``lr_d``, Q's
        head (if any) at ``lr_q``; Q's loss also shapes the shared trunk. G has its own
        optimiser.
        """
        self.to(self.device)
        betas = (self.config.beta1, self.config.beta2)
        d = self.discriminator
        groups = [{"params": [p for name, p in d.named_parameters()
                              if not name.startswith("q_head.")],
                   "lr": self.config.lr_d}]
        if d.q_head is not None:
            if lr_q is None:
                raise ValueError("a discriminator with a Q head needs lr_q")
            groups.append({"params": d.q_head.parameters(), "lr": lr_q})
        self.opt_d = torch.optim.Adam(groups, betas=betas)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.config.lr_g,
                                      betas=betas)

    #: default schedule with the 64x64 ``dsprites`` preset (two G updates per step): sized so
    #: that ``disentangle run infogan --dataset dsprites`` ends within minutes on a laptop CPU
    #: (step times: benchmarks/results/baselines_dsprites.md)
    dsprites_steps: ClassVar[int] = 1500

    @classmethod
    def dataset_defaults(cls, dataset: FactorDataset) -> dict[str, Any]:
        """The ``arch`` preset that fits the image size."""
        return {"arch": architecture_for(dataset.image_shape)}

    @classmethod
    def default_steps_for(cls, dataset: FactorDataset) -> int:
        if architecture_for(dataset.image_shape) == "dsprites":
            return min(cls.default_steps, cls.dsprites_steps)
        return cls.default_steps

    def sample_latent(self, n: int, generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def latent_vector(self, *parts: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def code_loss(self, q: torch.Tensor | None, parts: tuple[torch.Tensor, ...]
                  ) -> tuple[torch.Tensor, dict[str, float]]:
        """A loss on Q's output for the latent parts that made the images, and values to log."""
        return torch.zeros((), device=self.device), {}

    def real_condition(self, factors: np.ndarray) -> torch.Tensor | None:
        """What D is told about real images besides their pixels, from the batch's factors
        (conditional GANs: the class labels); None here."""
        return None

    def fake_condition(self, parts: tuple[torch.Tensor, ...]) -> torch.Tensor | None:
        """What D is told about generated images (the classes they were made for); None here."""
        return None

    def discriminate(self, images: torch.Tensor, condition: torch.Tensor | None
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """D's real/fake logits ``[n]`` and Q's outputs for images under ``condition``."""
        return self.discriminator(images)

    def real_code_loss(self, q: torch.Tensor | None, condition: torch.Tensor | None
                       ) -> tuple[torch.Tensor, dict[str, float]]:
        """A loss on Q's output for real images, added to D's loss only (AC-GAN's class loss
        on real images), and values to log; zero here."""
        return torch.zeros((), device=self.device), {}

    def train_step(self, images: torch.Tensor, factors: np.ndarray, step: int) -> dict[str, float]:
        cfg = self.config
        n = images.shape[0]
        real = images.to(self.device)

        real_condition = self.real_condition(factors)
        parts = self.sample_latent(n)
        with torch.no_grad():
            fake = self.generator(self.latent_vector(*parts))
        real_logit, q_real = self.discriminate(real, real_condition)
        fake_logit, q_fake = self.discriminate(fake, self.fake_condition(parts))
        d_adv = adversarial_loss(cfg.loss, real_logit, fake_logit, for_generator=False)
        d_real_code, logged_real = self.real_code_loss(q_real, real_condition)
        d_loss = d_adv + self.code_loss(q_fake, parts)[0] + d_real_code
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()

        for _ in range(cfg.g_steps):
            parts = self.sample_latent(n)
            fake_logit, q_fake = self.discriminate(self.generator(self.latent_vector(*parts)),
                                                   self.fake_condition(parts))
            g_adv = adversarial_loss(cfg.loss, None, fake_logit, for_generator=True)
            g_code, logged = self.code_loss(q_fake, parts)
            self.opt_g.zero_grad(set_to_none=True)
            (g_adv + g_code).backward()
            self.opt_g.step()

        return {"d_loss": d_loss.item(), "g_loss": g_adv.item(),
                "d_real": torch.sigmoid(real_logit).mean().item(), **logged_real, **logged}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"d": self.opt_d, "g": self.opt_g}

    @torch.no_grad()
    def generate(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.generator(self.latent_vector(*self.sample_latent(n, generator))).cpu()


class InverseScoredGAN(GANBase):
    """A GAN scored through an inverse encoder (see
    :mod:`~disentangle_plugins.models.inverse`) that predicts G's whole input vector.

    Subclasses call :meth:`_build_inverse` before :meth:`_make_optimizers` and may override
    :meth:`representation` to read the predicted vector as codes (by default every entry is
    a continuous code).
    """

    def _build_inverse(self) -> None:
        self.inverse = InverseEncoder(self.image_shape, self.latent_dim, self.config.d_channels)

    def _generated_pairs(self, n: int, generator: torch.Generator
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        latent = self.latent_vector(*self.sample_latent(n, generator))
        with eval_mode(self.generator):
            return latent, self.generator(latent)

    def prepare_evaluation(self, seed: int) -> dict[str, float]:
        """Fit the inverse encoder on this generator's samples (see the module docstring)."""
        mse = self.inverse.fit(self._generated_pairs, self.config, seed)
        return {"inverse_encoder.mse": mse}

    def representation(self, predicted: torch.Tensor) -> Representation:
        """The codes of images whose generator input is predicted as ``predicted``."""
        return Representation(predicted.double().cpu().numpy(),
                              np.zeros((len(predicted), 0), np.int64))

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> Representation:
        return self.representation(self.inverse(images.to(self.device)))


@dataclass(frozen=True)
class PlainGANConfig(InverseEncoderConfig, GANConfig):
    """GAN hyper-parameters plus those of the inverse encoder that scores it."""


class GAN(InverseScoredGAN):
    """Plain GAN with InfoGAN's networks and no codes, scored through an inverse encoder."""

    name = "gan"
    Config = PlainGANConfig
    default_steps = 2000

    def __init__(self, config: PlainGANConfig, dataset: FactorDataset, device: torch.device):
        if config.noise_dim < 1:
            raise ValueError("a plain GAN needs noise_dim >= 1")
        super().__init__(config, dataset, device, latent_dim=config.noise_dim)
        self._build_inverse()
        self._make_optimizers()

    def sample_latent(self, n: int, generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, ...]:
        return (torch.rand(n, self.config.noise_dim, generator=generator) * 2 - 1,)

    def latent_vector(self, *parts: torch.Tensor) -> torch.Tensor:
        return parts[0].to(self.device)

    @torch.no_grad()
    def traversals(self, generator: torch.Generator, rows: int = 8, steps: int = 9,
                   span: float = 2.0) -> dict[str, torch.Tensor]:
        """A picture per noise dimension, swept from ``-span`` to ``span`` along each row."""
        (noise,) = self.sample_latent(rows, generator)
        values = torch.linspace(-span, span, steps)
        return {f"noise_{j}": self.generator(self.latent_vector(sweep(noise, j, values)))
                .cpu().view(rows, steps, *self.image_shape)
                for j in range(self.config.noise_dim)}


@hookimpl
def disentangle_register_models() -> list[type[Model]]:
    return [GAN]
