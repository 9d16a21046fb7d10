"""A plain GAN (Goodfellow et al. 2014) with InfoGAN's networks, and the GAN training template.

:class:`GANBase` holds what every GAN here shares: the generator and discriminator of
:mod:`~disentangle_plugins.models.nets`, their Adam optimisers (built in one place from the
parameter groups the model declares), the training step (a discriminator update, then
``g_steps`` generator updates) and, for a model without an encoder of its own, the inverse
encoder that scores it. A GAN is its latent type (a dataclass of the tensors one draw of the
prior is made of), :meth:`GANBase.sample_latent` and :meth:`GANBase.latent_vector`; it may add
a loss on the discriminator's code head (InfoGAN's mutual-information term, AC-GAN's class
loss) and condition the discriminator on a label.

The networks are one layer family: G is FC, FC to a small feature map, then 4x4 stride-2
up-convolutions; D shares 4x4 stride-2 convolutions and an FC layer with the code head.
``arch`` picks a preset of sizes and training settings (any of them can still be set one by
one), chosen from the image size by default (:func:`architecture_for`):

* ``mnist`` (28x28): the InfoGAN paper's MNIST setting. G: FC 1024, FC 7x7x128, up-conv 64,
  up-conv 1; D: conv 64, conv 128, FC 1024; batch norm after every hidden layer but D's
  first; Adam with 2e-4 for D and 1e-3 for G.
* ``digits`` (up to 16x16, e.g. scikit-learn's 8x8 digits): the same networks and training
  settings as ``mnist`` (one preset under two names; G's FC map is smaller for smaller
  images by construction); the name exists because InfoGAN's codes differ (see its module).
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

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from disentangle import hookimpl
from disentangle.config import option
from disentangle.datasets import FactorDataset
from disentangle.models import Losses, Model, Representation, eval_mode, sweep
from disentangle_plugins.models.inverse import InverseEncoder
from disentangle_plugins.models.nets import (
    Discriminator,
    Generator,
    adversarial_loss,
    init_gan_weights,
)

#: the InfoGAN paper's MNIST networks and training settings (also the ``digits`` preset)
_MNIST: dict[str, Any] = {
    "spectral_norm": False, "batchnorm": True, "d_channels": (64, 128), "fc_dim": 1024,
    "leak": 0.1, "g_leak": 0.0, "lr_d": 2e-4, "lr_g": 1e-3, "g_steps": 1,
}

#: the settings each ``arch`` preset gives to the network and training options left unset
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "mnist": _MNIST,
    "digits": _MNIST,
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
    preset's value when the config is built by :func:`disentangle.config.instantiate`
    (subclasses extend :attr:`PRESETS` with their own options)."""

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

    @classmethod
    def complete(cls, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` with every preset option that is unset (None) taken from the preset."""
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        arch = values.get("arch", defaults["arch"])
        if arch not in cls.PRESETS:
            raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(cls.PRESETS)}")
        filled = dict(values)
        for key, value in cls.PRESETS[arch].items():
            if filled.get(key, defaults[key]) is None:
                filled[key] = value
        return filled

    def __post_init__(self) -> None:
        unset = [k for k in self.PRESETS.get(self.arch, ()) if getattr(self, k) is None]
        if self.arch not in self.PRESETS or unset:
            raise ValueError(f"options {', '.join(unset) or 'arch'} are not resolved: build "
                             f"the config with disentangle.config.instantiate")
        if self.noise_dim < 0:
            raise ValueError("noise_dim must be >= 0")
        if not self.d_channels or min(self.d_channels) < 1 or self.fc_dim < 1:
            raise ValueError("d_channels and fc_dim must be positive")
        if self.g_steps < 1 or min(self.lr_d, self.lr_g) <= 0:
            raise ValueError("g_steps must be >= 1 and learning rates > 0")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError("Adam betas must lie in [0, 1)")


@dataclass(frozen=True)
class InverseScoredConfig(GANConfig):
    """GAN hyper-parameters plus those of the inverse encoder that scores a GAN without an
    encoder of its own (see :mod:`~disentangle_plugins.models.inverse`). A model whose
    config is one of these is scored through that encoder."""

    inverse_steps: int = option(500, "Adam steps fitting the inverse encoder before each "
                                      "evaluation")
    inverse_batch_size: int = option(64, "generated samples per inverse-encoder step")
    inverse_lr: float = option(1e-3, "Adam learning rate of the inverse encoder")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.inverse_steps < 1 or self.inverse_batch_size < 1 or self.inverse_lr <= 0:
            raise ValueError("inverse_steps, inverse_batch_size and inverse_lr must be positive")


@dataclass(frozen=True)
class Condition:
    """The categorical factor a conditional GAN is given as a label."""

    factor: str
    column: int
    size: int


@dataclass
class Noise:
    """The plain GAN's latent: noise ``[n, noise_dim]`` drawn from U(-1, 1)."""

    noise: torch.Tensor


class GANBase(Model):
    """Generator, discriminator (with an optional code head ``Q``), optimisers and the step.

    A subclass gives its latent type, :meth:`sample_latent` (one draw of it, on CPU) and
    :meth:`latent_vector` (the generator's input made from it). It may override
    :meth:`code_loss` (a loss on the auxiliary head's output for generated images, added to
    both players' losses), :meth:`real_code_loss` (one on real images, added to D's),
    :meth:`generator_regularizer` (a further term of G's loss) and :meth:`discriminate`
    (how D sees an image and its label).

    The constructor's options shape D: ``head_out`` outputs of an auxiliary head of width
    ``head_dim`` learning at ``lr_head`` (InfoGAN's Q, AC-GAN's classifier);
    ``d_extra_channels`` input channels beyond the image's; ``projection_classes`` a
    projection discriminator. With a ``condition``, D is told the
    label of every image: real images' from the batch's factors, generated images' from
    their latent's ``labels`` field. When the config is an :class:`InverseScoredConfig`,
    the model holds an inverse encoder and is scored through it.
    """

    #: faster channels-last on the CPU (benchmarks/results/step_speed.txt)
    channels_last = True

    def __init__(self, config: GANConfig, dataset: FactorDataset, device: torch.device,
                 latent_dim: int | None = None, *, head_out: int = 0, head_dim: int = 0,
                 lr_head: float | None = None, d_extra_channels: int = 0,
                 projection_classes: int = 0, condition: Condition | None = None):
        super().__init__(config, dataset, device)
        self.latent_dim = config.noise_dim if latent_dim is None else latent_dim
        self.condition = condition
        self.generator = Generator(self.latent_dim, self.image_shape, config.d_channels,
                                   config.fc_dim, config.g_leak)
        channels, height, width = self.image_shape
        self.discriminator = Discriminator(
            (channels + d_extra_channels, height, width), config.d_channels, config.fc_dim,
            head_out, head_dim, leak=config.leak, spectral_norm=config.spectral_norm,
            batchnorm=config.batchnorm, projection_classes=projection_classes)
        init_gan_weights(self.generator)
        init_gan_weights(self.discriminator)
        self.inverse = InverseEncoder(self.image_shape, self.latent_dim, config.d_channels) \
            if isinstance(config, InverseScoredConfig) else None
        self.to(self.device)
        betas = (config.beta1, config.beta2)
        groups = self.parameter_groups(lr_head)
        self.opt_d = torch.optim.Adam(groups["d"], betas=betas)
        self.opt_g = torch.optim.Adam(groups["g"], betas=betas)

    def parameter_groups(self, lr_head: float | None) -> dict[str, list[dict[str, Any]]]:
        """The Adam parameter groups of each optimiser: D's trunk and real/fake head (a
        projection's class embedding included) at ``lr_d``, the auxiliary head (if any) at
        ``lr_head`` (its loss also shapes the shared trunk); G's parameters at ``lr_g``."""
        d = self.discriminator
        groups = [{"params": [p for name, p in d.named_parameters()
                              if not name.startswith("aux_head.")], "lr": self.config.lr_d}]
        if d.aux_head is not None:
            if lr_head is None:
                raise ValueError("a discriminator with an auxiliary head needs lr_head")
            groups.append({"params": list(d.aux_head.parameters()), "lr": lr_head})
        return {"d": groups,
                "g": [{"params": list(self.generator.parameters()), "lr": self.config.lr_g}]}

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

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Any:
        """One draw of the prior for ``n`` images: an instance of the model's latent type."""
        raise NotImplementedError

    def latent_vector(self, latent: Any) -> torch.Tensor:
        """The generator's input ``[n, latent_dim]`` on the model's device."""
        raise NotImplementedError

    def code_loss(self, q: torch.Tensor | None, latent: Any
                  ) -> tuple[torch.Tensor, Losses]:
        """A loss on Q's output for images made from ``latent``, and values to log."""
        return torch.zeros((), device=self.device), {}

    def generator_regularizer(self, n: int, step: int) -> torch.Tensor:
        """A further term of G's loss at ``step`` (batch size ``n``), made from images it
        generates for it (InfoGAN-CR's contrastive term); zero here."""
        return torch.zeros((), device=self.device)

    def real_code_loss(self, q: torch.Tensor | None, labels: torch.Tensor | None
                       ) -> tuple[torch.Tensor, Losses]:
        """A loss on Q's output for real images of ``labels``, added to D's loss only, and
        values to log; zero here."""
        return torch.zeros((), device=self.device), {}

    def discriminate(self, images: torch.Tensor, labels: torch.Tensor | None
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """D's real/fake logits ``[n]`` and Q's outputs for images of class ``labels``
        (None for an unconditional GAN; a projection discriminator uses them)."""
        return self.discriminator(images, labels)

    def _real_labels(self, factors: np.ndarray) -> torch.Tensor | None:
        """The labels D is told for real images: the condition's column of their factors."""
        if self.condition is None:
            return None
        return torch.as_tensor(np.asarray(factors)[:, self.condition.column],
                               dtype=torch.long, device=self.device)

    def _fake_labels(self, latent: Any) -> torch.Tensor | None:
        """The labels D is told for images made from ``latent``: the ones they were made for."""
        return None if self.condition is None else latent.labels.to(self.device)

    def train_step(self, images: torch.Tensor, factors: np.ndarray, step: int) -> Losses:
        cfg = self.config
        n = images.shape[0]
        real = images.to(self.device)

        real_labels = self._real_labels(factors)
        latent = self.sample_latent(n)
        with torch.no_grad():
            fake = self.generator(self.latent_vector(latent))
        real_logit, q_real = self.discriminate(real, real_labels)
        fake_logit, q_fake = self.discriminate(fake, self._fake_labels(latent))
        d_adv = adversarial_loss(cfg.loss, real_logit, fake_logit, for_generator=False)
        d_real_code, logged_real = self.real_code_loss(q_real, real_labels)
        d_loss = d_adv + self.code_loss(q_fake, latent)[0] + d_real_code
        self.optimize(self.opt_d, d_loss)

        for _ in range(cfg.g_steps):
            latent = self.sample_latent(n)
            fake_logit, q_fake = self.discriminate(self.generator(self.latent_vector(latent)),
                                                   self._fake_labels(latent))
            g_adv = adversarial_loss(cfg.loss, None, fake_logit, for_generator=True)
            g_code, logged = self.code_loss(q_fake, latent)
            self.optimize(self.opt_g, g_adv + g_code + self.generator_regularizer(n, step))

        return {"d_loss": d_loss.detach(), "g_loss": g_adv.detach(),
                "d_real": torch.sigmoid(real_logit.detach()).mean(), **logged_real, **logged}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"d": self.opt_d, "g": self.opt_g}

    @torch.no_grad()
    def generate(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.generator(self.latent_vector(self.sample_latent(n, generator))).cpu()

    # -- scoring through the inverse encoder (a model with an encoder overrides encode) -----

    def _generated_pairs(self, n: int, generator: torch.Generator
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        latent = self.latent_vector(self.sample_latent(n, generator))
        with eval_mode(self.generator):
            return latent, self.generator(latent)

    def prepare_evaluation(self, seed: int) -> dict[str, float]:
        """Fit the inverse encoder, if the model has one, on this generator's samples."""
        if self.inverse is None:
            return {}
        cfg = self.config
        mse = self.inverse.fit(self._generated_pairs, cfg.inverse_steps,
                               cfg.inverse_batch_size, cfg.inverse_lr, seed)
        return {"inverse_encoder.mse": mse}

    def representation(self, predicted: torch.Tensor) -> Representation:
        """The codes of images whose generator input the inverse encoder predicts as
        ``predicted`` (by default every entry is a continuous code)."""
        return Representation(predicted.double().cpu().numpy(),
                              np.zeros((len(predicted), 0), np.int64))

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> Representation:
        if self.inverse is None:
            raise NotImplementedError(f"{type(self).__name__} has neither an encoder nor an "
                                      f"inverse encoder (give it an InverseScoredConfig)")
        return self.representation(self.inverse(images.to(self.device)))


class GAN(GANBase):
    """Plain GAN with InfoGAN's networks and no codes, scored through an inverse encoder."""

    name = "gan"
    Config = InverseScoredConfig
    default_steps = 2000

    def __init__(self, config: InverseScoredConfig, dataset: FactorDataset,
                 device: torch.device):
        if config.noise_dim < 1:
            raise ValueError("a plain GAN needs noise_dim >= 1")
        super().__init__(config, dataset, device)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Noise:
        return Noise(torch.rand(n, self.config.noise_dim, generator=generator) * 2 - 1)

    def latent_vector(self, latent: Noise) -> torch.Tensor:
        return latent.noise.to(self.device)

    def code_names(self) -> list[str]:
        return [f"noise_{j}" for j in range(self.config.noise_dim)]

    @torch.no_grad()
    def traversals(self, generator: torch.Generator, rows: int = 8, steps: int = 9,
                   span: float = 2.0) -> dict[str, torch.Tensor]:
        """A picture per noise dimension, swept from ``-span`` to ``span`` along each row."""
        noise = self.sample_latent(rows, generator).noise
        values = torch.linspace(-span, span, steps)
        return {f"noise_{j}": self.generator(self.latent_vector(Noise(sweep(noise, j, values))))
                .cpu().view(rows, steps, *self.image_shape)
                for j in range(self.config.noise_dim)}


@hookimpl
def disentangle_register_models() -> list[type[Model]]:
    return [GAN]
