"""What the class-conditional GANs (``cgan``, ``acgan``, ``projection_cgan``) share.

Each one is the GAN template of :mod:`~disentangle_plugins.models.gan` (InfoGAN's generator
and discriminator trunks, the ``arch`` presets) given a label: one categorical factor of the
dataset, chosen with ``--set condition=NAME`` (default: the dataset's first categorical
factor, ``shape`` on dSprites, ``digit`` on MNIST and digits). The generator's input is the
noise ``z ~ U(-1, 1)`` followed by the label's one-hot vector; generated images get labels
drawn uniformly, real ones bring theirs from the batch's factors. The models differ only in
how the discriminator uses the label (see each plugin).

Like the plain GAN they have no encoder of their own: they are scored through the
inverse-encoder protocol of :mod:`~disentangle_plugins.models.inverse`, the encoder
predicting the whole generator input. The representation is the predicted noise
(continuous codes) and the arg-max of the predicted one-hot part (one categorical code, so
``categorical_accuracy`` measures how well the label can be read back from real images).
They implement :class:`~disentangle.models.ClassConditional` for ``conditional_accuracy``,
and draw a picture ``classes`` with a row per class (the columns share their noise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from disentangle.config import option
from disentangle.datasets import FactorDataset
from disentangle.models import Representation
from disentangle_plugins.models.gan import Condition, GANBase, InverseScoredConfig


@dataclass(frozen=True)
class ConditionalGANConfig(InverseScoredConfig):
    """GAN and inverse-encoder hyper-parameters plus the factor to condition on."""

    condition: str = option(
        "", "categorical factor of the dataset to condition on (default: its first one)")


def condition_factor(dataset: FactorDataset, name: str) -> Condition:
    """The categorical factor called ``name`` (empty: the first one).

    Raises ValueError naming the dataset's categorical factors when there is no such one.
    """
    categorical = tuple(dataset.categorical_factors)
    if not categorical:
        raise ValueError(f"dataset {dataset.name!r} has no categorical factor to condition on")
    name = name or categorical[0]
    if name not in categorical:
        raise ValueError(f"condition={name!r} is not a categorical factor of "
                         f"{dataset.name!r}; choose one of: {', '.join(categorical)}")
    column = dataset.factor_names.index(name)
    return Condition(name, column, int(dataset.factor_sizes[column]))


@dataclass
class Labelled:
    """A conditional GAN's latent: noise ``[n, noise_dim]`` and the label ``[n]`` each image
    is made for."""

    noise: torch.Tensor
    labels: torch.Tensor


class ConditionalGAN(GANBase):
    """A GAN whose generator and discriminator are given a class label (see the module).

    Subclasses pass their discriminator's options (:meth:`discriminator_options`) and may
    override :meth:`~GANBase.discriminate` and the code losses to use the label.
    """

    Config = ConditionalGANConfig
    default_steps = 2000

    def __init__(self, config: ConditionalGANConfig, dataset: FactorDataset,
                 device: torch.device):
        condition = condition_factor(dataset, config.condition)
        self.class_factor, self.num_classes = condition.factor, condition.size
        # a classifier head on D (AC-GAN's) learns with D, as in the papers' single optimiser
        super().__init__(config, dataset, device, config.noise_dim + self.num_classes,
                         lr_head=config.lr_d, condition=condition,
                         **self.discriminator_options(config))

    def discriminator_options(self, config: ConditionalGANConfig) -> dict[str, int]:
        """Keyword options of :class:`GANBase`'s discriminator (``num_classes`` is known)."""
        return {}

    @classmethod
    def dataset_defaults(cls, dataset: FactorDataset) -> dict[str, Any]:
        """The ``arch`` preset that fits the image size; the first categorical factor."""
        defaults = super().dataset_defaults(dataset)
        if dataset.categorical_factors:
            defaults["condition"] = dataset.categorical_factors[0]
        return defaults

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Labelled:
        """Noise ``[n, noise_dim]`` and uniformly drawn labels ``[n]`` (on CPU)."""
        noise = torch.rand(n, self.config.noise_dim, generator=generator) * 2 - 1
        return Labelled(noise, torch.randint(0, self.num_classes, (n,), generator=generator))

    def latent_vector(self, latent: Labelled) -> torch.Tensor:
        """The generator's input ``[z, one-hot(label)]`` on the model's device."""
        return torch.cat([latent.noise, self.one_hot(latent.labels.cpu())],
                         dim=1).to(self.device)

    def one_hot(self, labels: torch.Tensor) -> torch.Tensor:
        """Labels ``[n]`` as float one-hot vectors ``[n, num_classes]``."""
        return F.one_hot(labels, self.num_classes).float()

    def representation(self, predicted: torch.Tensor) -> Representation:
        """Predicted noise as continuous codes, the predicted label as a categorical code."""
        noise_dim = self.config.noise_dim
        labels = predicted[:, noise_dim:].argmax(1, keepdim=True)
        return Representation(predicted[:, :noise_dim].double().cpu().numpy(),
                              labels.cpu().numpy())

    def code_names(self) -> list[str]:
        return [f"noise_{j}" for j in range(self.config.noise_dim)] + ["label"]

    @torch.no_grad()
    def generate_class(self, n: int, cls: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` images of label ``cls`` (fresh noise for each)."""
        noise = self.sample_latent(n, generator).noise
        labels = torch.full((n,), cls, dtype=torch.long)
        return self.generator(self.latent_vector(Labelled(noise, labels))).cpu()

    @torch.no_grad()
    def traversals(self, generator: torch.Generator, columns: int = 8
                   ) -> dict[str, torch.Tensor]:
        """``classes``: row ``k`` shows label ``k``; column ``j`` keeps one noise draw."""
        noise = self.sample_latent(columns, generator).noise
        labels = torch.arange(self.num_classes).repeat_interleave(columns)
        latent = Labelled(noise.repeat(self.num_classes, 1), labels)
        return {"classes": self.generator(self.latent_vector(latent)).cpu().view(
            self.num_classes, columns, *self.image_shape)}
