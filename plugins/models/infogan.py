"""InfoGAN (Chen et al. 2016): a GAN whose latent codes are made informative about its images.

The generator sees noise ``z`` plus codes ``c``: categorical codes (one-hot) and continuous
codes drawn from U(-1, 1). An auxiliary head Q, sharing the discriminator's convolutional
trunk, predicts ``c`` from ``G(z, c)``; minimising Q's negative log-likelihood maximises a
variational lower bound on the mutual information I(c; G(z, c)): for a categorical code the
bound is H(c) minus Q's cross-entropy, for a continuous code H(U(-1, 1)) = log 2 minus Q's
Gaussian negative log-likelihood. The representation scored by the metrics is Q's output on
real images: continuous means and the arg-max of each categorical code. Its first
categorical code also makes it a :class:`~disentangle.models.ClassConditional` generator
(``generate_class``), scored by ``conditional_accuracy`` next to the conditional GANs.

The networks and the training step are the shared GAN ones
(:class:`~disentangle_plugins.models.gan.GANBase`, built from
:mod:`~disentangle_plugins.models.nets`), with the information losses added to both
players' losses; D's head is FC 1 and Q's head FC ``q_dim`` then the code outputs. The
``arch`` presets of :mod:`~disentangle_plugins.models.gan` set the layer sizes and training
settings (any of them can still be set one by one), chosen from the image size by default;
on top of them each preset sets the codes:

* ``mnist`` (28x28): the paper's MNIST setting: 62 noise dimensions, one 10-way and two
  continuous codes, lambda 1, Q head FC 128 with batch norm, Adam 1e-3 for Q; Q's variance
  fixed at 1 as in the official code.
* ``digits`` (up to 16x16, e.g. scikit-learn's 8x8 digits): the MNIST codes with 16 noise
  dimensions instead of 62 and lambda 0.1 for the continuous codes: on 8x8 digits the
  paper's 62 dimensions and lambda 1 let noise and continuous codes carry digit identity,
  and the 10-way code classified the digits worse (see
  benchmarks/results/infogan_digits.txt).
* ``dsprites`` (64x64 and other multiples of 16): InfoGAN-CR's dSprites setting: 5
  continuous codes with lambda 0.05 and 5 noise dimensions, Q head FC 128, Adam 2e-3 for Q,
  and no categorical code (the shape factor gets one only when ``categorical_sizes`` is set).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from disentangle import hookimpl
from disentangle.config import option
from disentangle.datasets import FactorDataset
from disentangle.models import Losses, Model, Representation, sweep
from disentangle_plugins.models.gan import ARCHITECTURES as GAN_ARCHITECTURES
from disentangle_plugins.models.gan import PRESET, GANBase, GANConfig

_CODES: dict[str, dict[str, Any]] = {
    "mnist": {"noise_dim": 62, "categorical_sizes": (10,), "continuous_dim": 2,
              "lambda_continuous": 1.0, "q_dim": 128, "lr_q": 1e-3},
    "digits": {"noise_dim": 16, "categorical_sizes": (10,), "continuous_dim": 2,
               "lambda_continuous": 0.1, "q_dim": 128, "lr_q": 1e-3},
    "dsprites": {"noise_dim": 5, "categorical_sizes": (), "continuous_dim": 5,
                 "lambda_continuous": 0.05, "q_dim": 128, "lr_q": 2e-3},
}

#: the settings each ``arch`` preset gives to the options left unset (None): the GAN's
#: network and training settings plus InfoGAN's codes
ARCHITECTURES: dict[str, dict[str, Any]] = {
    arch: {**preset, **_CODES[arch]} for arch, preset in GAN_ARCHITECTURES.items()}


@dataclass(frozen=True)
class InfoGANConfig(GANConfig):
    """InfoGAN hyper-parameters: the GAN's plus the codes, their information losses and Q."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = ARCHITECTURES

    noise_dim: int | None = option(
        None, f"dimensions of the incompressible noise z ~ U(-1, 1) ({PRESET})")
    categorical_sizes: tuple[int, ...] | None = option(
        None, "number of classes of each categorical code (empty: none; "
              "default: the preset's, one per categorical factor of the dataset "
              "where the preset has categorical codes)")
    continuous_dim: int | None = option(
        None, f"number of continuous codes ~ U(-1, 1) ({PRESET})")
    lambda_categorical: float = option(1.0, "weight of the categorical information loss")
    lambda_continuous: float | None = option(
        None, f"weight of the continuous information loss ({PRESET})")
    learn_variance: bool = option(
        False, "Q predicts a variance for continuous codes (else fixed at 1, as in the "
               "official code)")
    q_dim: int | None = option(None, f"width of Q's hidden FC layer ({PRESET})")
    lr_q: float | None = option(None, f"Adam learning rate of Q's head ({PRESET})")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.continuous_dim < 0:
            raise ValueError("continuous_dim must be >= 0")
        if any(k < 2 for k in self.categorical_sizes):
            raise ValueError("each categorical code needs at least 2 classes")
        if not self.categorical_sizes and self.continuous_dim == 0:
            raise ValueError("InfoGAN needs at least one code (categorical or continuous)")
        if self.q_dim < 1 or self.lr_q <= 0:
            raise ValueError("q_dim must be positive and lr_q > 0")


@dataclass
class Codes:
    """InfoGAN's latent: noise ``[n, noise_dim]``, the class of each categorical code
    ``[n, m]`` and the continuous codes ``[n, d]``."""

    noise: torch.Tensor
    classes: torch.Tensor
    continuous: torch.Tensor


class InfoGAN(GANBase):
    """InfoGAN: categorical and continuous codes with a mutual-information lower bound."""

    name = "infogan"
    Config = InfoGANConfig
    default_steps = 2000

    def __init__(self, config: InfoGANConfig, dataset: FactorDataset, device: torch.device):
        self.cat_sizes = tuple(config.categorical_sizes)
        latent_dim = config.noise_dim + sum(self.cat_sizes) + config.continuous_dim
        q_out = sum(self.cat_sizes) + config.continuous_dim * (2 if config.learn_variance else 1)
        super().__init__(config, dataset, device, latent_dim, head_out=q_out,
                         head_dim=config.q_dim, lr_head=config.lr_q)

    @classmethod
    def dataset_defaults(cls, dataset: FactorDataset) -> dict[str, Any]:
        """The ``arch`` preset that fits the image size. Where that preset has categorical
        codes (``mnist``, ``digits``), one per categorical factor, sized like it (10 digits
        on MNIST); the ``dsprites`` preset keeps InfoGAN-CR's continuous codes only, so its
        shape factor gets no code unless ``categorical_sizes`` is set."""
        defaults = super().dataset_defaults(dataset)
        sizes = tuple(
            dataset.factor_sizes[dataset.factor_names.index(name)]
            for name in dataset.categorical_factors)
        if sizes and ARCHITECTURES[defaults["arch"]]["categorical_sizes"]:
            defaults["categorical_sizes"] = sizes
        return defaults

    # -- codes -------------------------------------------------------------------------------

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Codes:
        """Noise, categorical classes ``[n, m]`` and continuous codes ``[n, d]`` (on CPU)."""
        noise = torch.rand(n, self.config.noise_dim, generator=generator) * 2 - 1
        classes = torch.stack(
            [torch.randint(0, k, (n,), generator=generator) for k in self.cat_sizes], dim=1
        ) if self.cat_sizes else torch.zeros(n, 0, dtype=torch.long)
        continuous = torch.rand(n, self.config.continuous_dim, generator=generator) * 2 - 1
        return Codes(noise, classes, continuous)

    def latent_vector(self, latent: Codes) -> torch.Tensor:
        """The generator's input ``[z, one-hot(c_cat)..., c_cont]`` on the model's device."""
        one_hots = [F.one_hot(latent.classes[:, i], k).float()
                    for i, k in enumerate(self.cat_sizes)]
        return torch.cat([latent.noise, *one_hots, latent.continuous], dim=1).to(self.device)

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

    def code_loss(self, q: torch.Tensor | None, latent: Codes
                  ) -> tuple[torch.Tensor, Losses]:
        """The weighted information losses, and the information terms and bounds to log."""
        cfg = self.config
        info_cat, info_cont = self.information_losses(q, latent.classes, latent.continuous)
        logged = {}
        if self.cat_sizes:
            entropy = sum(math.log(k) for k in self.cat_sizes)
            logged["info_categorical"] = info_cat.detach()
            logged["mi_bound_categorical"] = entropy - info_cat.detach()
        if cfg.continuous_dim:
            logged["info_continuous"] = info_cont.detach()
            if cfg.learn_variance:
                # with the variance fixed at 1 the bound cannot exceed log 2 - log(2 pi) / 2 < 0
                # per code, so it is only worth reading when Q learns the variance
                logged["mi_bound_continuous"] = (cfg.continuous_dim * math.log(2)
                                                 - info_cont.detach())
        return cfg.lambda_categorical * info_cat + cfg.lambda_continuous * info_cont, logged

    # -- class-conditional generation (the ClassConditional protocol) ------------------------

    #: the first categorical code is learnt without labels: not tied to a dataset factor
    class_factor = None

    @property
    def num_classes(self) -> int:
        """Values of the first categorical code (0 without one)."""
        return self.cat_sizes[0] if self.cat_sizes else 0

    @torch.no_grad()
    def generate_class(self, n: int, cls: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` images with the first categorical code at ``cls``, the rest drawn as usual."""
        if not self.cat_sizes:
            raise ValueError("this InfoGAN has no categorical code")
        latent = self.sample_latent(n, generator)
        latent.classes[:, 0] = cls
        return self.generator(self.latent_vector(latent)).cpu()

    # -- inference ---------------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> Representation:
        _, q = self.discriminator(images.to(self.device))
        logits, mean, _ = self.split_q(q)
        classes = torch.stack([lg.argmax(1) for lg in logits], dim=1) if logits else \
            torch.zeros(len(q), 0, dtype=torch.long)
        return Representation(mean.double().cpu().numpy(), classes.cpu().numpy())

    @torch.no_grad()
    def class_probabilities(self, images: torch.Tensor) -> list[np.ndarray]:
        """Q's softmax over the classes of each categorical code (the ClassPosterior
        protocol)."""
        _, q = self.discriminator(images.to(self.device))
        logits, _, _ = self.split_q(q)
        return [torch.softmax(lg.double(), dim=1).cpu().numpy() for lg in logits]

    @torch.no_grad()
    def generate_holding(self, n: int, code: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` images sharing one random value of code ``code`` (continuous codes first, as
        in :meth:`code_names`); noise and the other codes are drawn for each image."""
        latent = self.sample_latent(n, generator)
        d = self.config.continuous_dim
        held = latent.continuous if code < d else latent.classes
        column = code if code < d else code - d
        held[:, column] = held[0, column]
        return self.generator(self.latent_vector(latent)).cpu()

    def code_names(self) -> list[str]:
        return ([f"continuous_{j}" for j in range(self.config.continuous_dim)]
                + [f"categorical_{i}" for i in range(len(self.cat_sizes))])

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
        drawn = self.sample_latent(rows, generator)
        noise, classes, continuous = drawn.noise, drawn.classes, drawn.continuous
        pictures = {}
        for i, k in enumerate(self.cat_sizes):
            latent = Codes(noise.repeat_interleave(k, 0), sweep(classes, i, torch.arange(k)),
                           continuous.repeat_interleave(k, 0))
            pictures[f"categorical_{i}"] = self.generator(self.latent_vector(latent)).cpu().view(
                rows, k, *self.image_shape)
        if self.cat_sizes:
            classes = classes[:1].repeat(self.cat_sizes[0], 1)
            classes[:, 0] = torch.arange(self.cat_sizes[0])
            noise = noise[:1].expand(self.cat_sizes[0], -1)
        n_rows = len(classes)
        values = torch.linspace(-span, span, steps)
        zeros = torch.zeros(n_rows, self.config.continuous_dim)
        for j in range(self.config.continuous_dim):
            latent = Codes(noise.repeat_interleave(steps, 0), classes.repeat_interleave(steps, 0),
                           sweep(zeros, j, values))
            pictures[f"continuous_{j}"] = self.generator(self.latent_vector(latent)).cpu().view(
                n_rows, steps, *self.image_shape)
        return pictures


@hookimpl
def disentangle_register_models() -> list[type[Model]]:
    return [InfoGAN]
