"""The model protocol: what the runner trains and what the metrics score."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from disentangle.datasets import FactorDataset
from disentangle.precision import scales_losses

#: the values a training step reports, by name: 0-dim tensors (read by the runner once per
#: logging window, so that a step never waits for the device) or plain numbers
Losses = dict[str, torch.Tensor | float]


@dataclass
class Representation:
    """A batch of latent codes: what disentanglement metrics score.

    ``continuous`` is ``[n, d]`` float (e.g. InfoGAN's Q means, a VAE's posterior means);
    ``categorical`` is ``[n, m]`` int, the chosen class of each categorical code.
    """

    continuous: np.ndarray
    categorical: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.continuous)
        if self.categorical.size == 0:
            self.categorical = np.zeros((n, 0), dtype=np.int64)
        if len(self.categorical) != n:
            raise ValueError("continuous and categorical codes differ in length")

    def __len__(self) -> int:
        return len(self.continuous)

    def codes(self) -> np.ndarray:
        """All codes as one float matrix ``[n, d + m]`` (categorical classes as numbers)."""
        return np.concatenate([self.continuous, self.categorical.astype(np.float64)], axis=1)

    @staticmethod
    def concatenate(parts: list[Representation]) -> Representation:
        return Representation(np.concatenate([p.continuous for p in parts]),
                              np.concatenate([p.categorical for p in parts]))

    def take(self, rows: np.ndarray) -> Representation:
        return Representation(self.continuous[rows], self.categorical[rows])


class Model(nn.Module, ABC):
    """A trainable model that owns its networks and optimisers.

    Subclasses set ``name`` and ``Config`` (a frozen dataclass of hyper-parameters whose
    fields are built with :func:`disentangle.config.option`) and implement
    :meth:`train_step`, :meth:`encode` and :meth:`generate`.
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    #: training steps of the default schedule (sized for a few minutes on a laptop CPU)
    default_steps: ClassVar[int] = 2000
    #: whether the runner stores the model's 4-D weights channels-last (set per model where
    #: ``benchmarks/step_speed.py`` measured it faster, with the same losses)
    channels_last: ClassVar[bool] = False

    def __init__(self, config: Any, dataset: FactorDataset, device: torch.device):
        super().__init__()
        self.config = config
        self.image_shape = tuple(dataset.image_shape)
        self.device = torch.device(device)
        #: the training steps' floating-point mode (:mod:`disentangle.precision`), set by the
        #: runner through :meth:`set_precision` once the model is built
        self.precision = "fp32"
        #: fp16's loss scaler of each optimiser, by the optimiser's name
        self.scalers: dict[str, torch.amp.GradScaler] = {}

    def set_precision(self, precision: str) -> None:
        """Train in ``precision`` from now on (the runner wraps each step in its autocast)."""
        self.precision = precision
        self.scalers = ({name: torch.amp.GradScaler(self.device.type)
                         for name in self.optimizers()} if scales_losses(precision) else {})

    def compile_networks(self) -> None:
        """Compile each network's (child module's) forward pass with ``torch.compile``; the
        weights, and so the checkpoints, stay as they are."""
        for child in self.children():
            child.forward = torch.compile(child.forward)

    def optimize(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        """One update of ``optimizer`` from ``loss``: zero its gradients, back-propagate,
        step.

        Back-propagation runs outside autocast, and with fp16 through the optimiser's loss
        scaler, which skips a step whose gradients overflowed and lowers its scale. Every
        first-party model updates through this, so each runs in every precision.
        """
        optimizer.zero_grad(set_to_none=True)
        scaler = next((self.scalers[name] for name, o in self.optimizers().items()
                       if o is optimizer and name in self.scalers), None)
        with torch.autocast(self.device.type, enabled=False):
            if scaler is None:
                loss.backward()
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()

    @classmethod
    def default_steps_for(cls, dataset: FactorDataset) -> int:
        """The default schedule on ``dataset`` (``default_steps`` unless a model's step
        cost depends on the dataset)."""
        return cls.default_steps

    @classmethod
    def dataset_defaults(cls, dataset: FactorDataset) -> dict[str, Any]:
        """Hyper-parameters that depend on the dataset (applied before ``--set`` overrides)."""
        return {}

    @abstractmethod
    def train_step(self, images: torch.Tensor, factors: np.ndarray, step: int) -> Losses:
        """One optimisation step on a batch; returns the losses to log.

        Return detached tensors rather than calling ``.item()``: the runner reads a whole
        logging window at once and checks it for NaN and infinity, so the host never waits
        for the device inside a window.
        """

    @abstractmethod
    def encode(self, images: torch.Tensor) -> Representation:
        """The learned representation of a batch of images (called in eval mode, no grad)."""

    @abstractmethod
    def generate(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` images from the model's prior, ``[n, C, H, W]`` in [0, 1]."""

    def traversals(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Pictures of what each code controls: name -> images ``[rows, cols, C, H, W]``.

        A picture named after a code (:meth:`code_names`) shows that code varying along
        each row, and the run's traversal figure takes its first row.
        """
        return {}

    def code_names(self) -> list[str]:
        """The name of each column of the representation (``encode(...).codes()``), in
        order; pictures and matrices label the codes with them. The default names none
        (they are then called ``code_<i>``)."""
        return []

    def prepare_evaluation(self, seed: int) -> dict[str, float]:
        """Called before every evaluation, with the run's seed; returns diagnostics to log.

        Models whose representation is derived from the trained networks rather than trained
        with them (a GAN's inverse encoder, fitted on generated images) build it here,
        reproducibly from ``seed``, and may report how well that went (logged with the
        scores). The default does nothing.
        """
        return {}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The model's optimisers by name (their state goes into checkpoints)."""
        return {}

    def checkpoint_state(self) -> dict[str, Any]:
        """Everything needed to continue training exactly: weights and optimiser states (and
        fp16's loss scales)."""
        state = {"modules": self.state_dict(),
                 "optimizers": {k: o.state_dict() for k, o in self.optimizers().items()}}
        if self.scalers:
            state["scalers"] = {k: s.state_dict() for k, s in self.scalers.items()}
        return state

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        self.load_state_dict(state["modules"])
        for key, opt in self.optimizers().items():
            opt.load_state_dict(state["optimizers"][key])
        for key, scaler in self.scalers.items():
            scaler.load_state_dict(state["scalers"][key])


@runtime_checkable
class ClassConditional(Protocol):
    """A model that generates images of a chosen class: conditional GANs (their label) and
    InfoGAN (its first categorical code). The ``conditional_accuracy`` metric asks for it.

    ``num_classes`` is how many classes it offers (0: none, e.g. an InfoGAN without a
    categorical code). ``class_factor`` names the dataset's categorical factor whose values
    the classes are, or is None when the classes are values of a code learnt without labels,
    whose correspondence to the dataset's classes has to be found.
    """

    class_factor: str | None
    num_classes: int

    def generate_class(self, n: int, cls: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` images of class ``cls``, ``[n, C, H, W]`` in [0, 1] (called in eval mode)."""


@runtime_checkable
class Reconstructs(Protocol):
    """A model with an encoder and a decoder (the VAE family): it can redraw a real image
    from its code, and the run's pictures then show real images above their
    reconstructions."""

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """The decoded code of each image, ``[n, C, H, W]`` in [0, 1] on the CPU (called in
        eval mode)."""


@runtime_checkable
class CodeKL(Protocol):
    """A model with a Gaussian posterior and prior (the VAE family): how much each latent
    is used, which orders the rows of its traversal figure."""

    def code_kl(self, images: torch.Tensor) -> np.ndarray:
        """The KL divergence of each latent's posterior from its prior, in nats, averaged
        over ``images`` (called in eval mode): ``[latent_dim]``."""


@runtime_checkable
class HoldsCodes(Protocol):
    """A generative model whose images come from codes it can hold fixed (InfoGAN's codes,
    a VAE's latents). Model selection by ModelCentrality (:mod:`disentangle.selection`)
    scores one model's encoder on another's images, the held code standing in for a known
    factor."""

    def generate_holding(self, n: int, code: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` images ``[n, C, H, W]`` in [0, 1] on the CPU that share one random value of
        code ``code`` (a column of :meth:`Model.code_names`), every other input drawn afresh
        (called in eval mode)."""


@runtime_checkable
class ClassPosterior(Protocol):
    """A model that reads a distribution over classes off an image for each of its
    categorical codes (InfoGAN's Q). Model selection by information
    (:mod:`disentangle.selection`) scores how much those codes say about real images.

    ``cat_sizes`` is the number of classes of each categorical code (empty: none)."""

    cat_sizes: tuple[int, ...]

    def class_probabilities(self, images: torch.Tensor) -> list[np.ndarray]:
        """Per categorical code, the probability of each class for each image,
        ``[n, classes]`` (rows sum to 1; an empty list without categorical codes; called in
        eval mode)."""


def sweep(base: torch.Tensor, column: int, values: torch.Tensor) -> torch.Tensor:
    """Each row of ``base`` ``[rows, d]`` once per value, with ``column`` set to that value.

    The result is ``[rows * len(values), d]`` in row-major order (row 0 with every value,
    then row 1, ...): the inputs of a traversal picture whose rows share all other codes.
    """
    out = base.repeat_interleave(len(values), 0)
    out[:, column] = values.to(out.dtype).repeat(len(base))
    return out


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Run a block in eval mode without gradients, restoring the previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)
