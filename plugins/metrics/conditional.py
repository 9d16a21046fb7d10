"""Conditional accuracy: are a model's images of class k recognised as class k?

For models that generate images of a chosen class (the
:class:`~disentangle.models.ClassConditional` protocol: the conditional GANs, and InfoGAN
through its first categorical code), a judge is needed that knows the classes. The
protocol:

1. A small CNN classifier (the reference study's convolutional encoder,
   :class:`~disentangle_plugins.models.nets.ConvEncoder`, with one logit per class) is
   trained on real images of the dataset to predict the class factor. Its training images
   are ``classifier_images`` draws of the dataset, duplicates removed by content; a fifth of
   the distinct images is held out, and its accuracy on them is reported as
   ``conditional_accuracy.classifier`` (a ceiling for what a generator can score). It is
   trained for ``classifier_steps`` Adam steps with seed 0 whatever the run's seed, so every
   model and seed on a dataset is judged by the same classifier, and cached on disk under
   ``$DISENTANGLE_CACHE/classifiers`` (default ``~/.cache/disentangle``), keyed by dataset
   name, factor, image shape and these settings.
2. The model generates ``samples_per_class`` images of each class ``k``; the score is the
   fraction classified as ``k``.

For a model conditioned on the factor itself (``class_factor`` set) class ``k`` is the
factor's value ``k``. For InfoGAN, whose categorical code is learnt without labels
(``class_factor`` None), the code values are first mapped to the factor's classes by the
Hungarian method (``scipy.optimize.linear_sum_assignment``) on the confusion between code
values and the classifier's predictions, so the score is the best one-to-one matching
(majority vote when the code has more values than the factor has classes; see
:mod:`~disentangle_plugins.metrics.categorical`); the factor is then the dataset's first
categorical one. A generator that ignores the class scores about ``1 / K``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

import disentangle
from disentangle import checkpoints
from disentangle.datasets import FactorDataset
from disentangle.errors import NotApplicable, UsageError
from disentangle.metrics import Metric, Observer
from disentangle.models import ClassConditional, eval_mode
from disentangle.tracking import cache_home
from disentangle_plugins.metrics.categorical import mapped_accuracies
from disentangle_plugins.models.nets import ConvEncoder

#: the classifier's convolution widths (one stride-2 halving each, as many as the image allows)
WIDTHS = (32, 32, 64, 64)
DENSE_DIM = 128
BATCH_SIZE = 64
LEARNING_RATE = 1e-3
HELD_OUT = 0.2
#: changes whenever the recipe above does, so stale cached classifiers are not reused
RECIPE = 1


def conditional_accuracy(classes: np.ndarray, predicted: np.ndarray, num_classes: int,
                         matched: bool = False) -> dict[str, float]:
    """Fraction of images of class ``classes[i]`` whose predicted class is the same.

    ``classes`` and ``predicted`` are int ``[N]``; ``predicted`` lies in
    ``0..num_classes - 1``. With ``matched`` the classes are code values mapped to the
    predicted classes first (Hungarian, or majority vote for more code values than classes).
    """
    classes, predicted = np.asarray(classes), np.asarray(predicted)
    if classes.shape != predicted.shape or classes.ndim != 1 or not len(classes):
        raise ValueError("classes and predicted must be non-empty vectors of one length")
    if matched:
        accuracy = mapped_accuracies(classes, predicted, num_classes)[0]
    else:
        accuracy = float(np.mean(classes == predicted))
    return {"conditional_accuracy": accuracy}


def classifier_widths(image_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Up to four widths of :data:`WIDTHS`, one per halving that leaves an even side >= 2."""
    _, height, width = image_shape
    widths: list[int] = []
    while len(widths) < len(WIDTHS) and height % 2 == 0 and width % 2 == 0 \
            and min(height, width) >= 4:
        widths.append(WIDTHS[len(widths)])
        height, width = height // 2, width // 2
    if not widths:
        raise NotApplicable(f"images of {height}x{width} are too small for the classifier")
    return tuple(widths)


def _distinct(images: torch.Tensor, labels: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """The images (and their labels) with exact duplicates removed, in first-seen order."""
    flat = np.ascontiguousarray(images.numpy().reshape(len(images), int(np.prod(images.shape[1:]))))
    whole = flat.view(np.dtype((np.void, flat.dtype.itemsize * flat.shape[1])))[:, 0]
    _, first = np.unique(whole, return_index=True)  # each image's bytes as one value
    rows = np.sort(first)
    return images[rows], labels[rows]


def train_classifier(dataset: FactorDataset, factor: str, num_images: int, steps: int,
                     device: torch.device) -> tuple[ConvEncoder, float]:
    """A classifier of ``factor`` trained on real images (seed 0), and its held-out accuracy."""
    column = dataset.factor_names.index(factor)
    classes = dataset.factor_sizes[column]
    rng = np.random.default_rng(0)
    images, factors = dataset.sample(num_images, rng)
    images, labels = _distinct(images, factors[:, column])
    order = rng.permutation(len(images))
    n_test = max(1, int(round(HELD_OUT * len(images))))
    if len(images) - n_test < 1:
        raise NotApplicable(f"dataset {dataset.name!r} gave too few distinct images "
                            f"({len(images)}) to train and test a classifier")
    test, train = order[:n_test], order[n_test:]
    train_x, train_y = images[train].to(device), torch.as_tensor(labels[train], device=device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = ConvEncoder(dataset.image_shape, classifier_widths(dataset.image_shape),
                          DENSE_DIM, classes).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)
    for _ in range(steps):
        batch = torch.as_tensor(rng.integers(0, len(train), BATCH_SIZE), device=device)
        loss = F.cross_entropy(net(train_x[batch]), train_y[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    net.eval()
    predicted = predict(net, images[test], device)
    return net, float(np.mean(predicted == labels[test]))


def fitted_classifier(dataset: FactorDataset, factor: str, num_images: int, steps: int,
                      device: torch.device) -> tuple[ConvEncoder, float]:
    """The cached classifier of ``factor`` on ``dataset`` (trained and stored when missing)
    and its held-out accuracy."""
    channels, height, width = dataset.image_shape
    path = cache_home() / "classifiers" / (
        f"{dataset.name}-{factor}-{channels}x{height}x{width}"
        f"-n{num_images}-s{steps}-r{RECIPE}.pt")
    if path.is_file():
        state = checkpoints.load(path)
        net = ConvEncoder(dataset.image_shape, classifier_widths(dataset.image_shape),
                          DENSE_DIM, dataset.factor_sizes[dataset.factor_names.index(factor)])
        net.load_state_dict(state["weights"])
        return net.to(device).eval(), float(state["held_out_accuracy"])
    net, accuracy = train_classifier(dataset, factor, num_images, steps, device)
    checkpoints.save(path, {"weights": {k: v.cpu() for k, v in net.state_dict().items()},
                            "held_out_accuracy": accuracy})
    return net, accuracy


@torch.no_grad()
def predict(net: ConvEncoder, images: torch.Tensor, device: torch.device,
            batch_size: int = 1024) -> np.ndarray:
    """The classifier's predicted class of each image."""
    return np.concatenate([net(images[i:i + batch_size].to(device)).argmax(1).cpu().numpy()
                           for i in range(0, len(images), batch_size)])


def score(observer: Observer, rng: np.random.Generator, samples_per_class: int = 200,
          classifier_images: int = 5000, classifier_steps: int = 500) -> dict[str, float]:
    """Conditional accuracy of ``samples_per_class`` generated images per class."""
    model, dataset = observer.model, observer.dataset
    if not isinstance(model, ClassConditional):
        raise NotApplicable("the model cannot generate images of a chosen class")
    if model.num_classes < 1:
        raise NotApplicable("the model has no classes to generate (no categorical code)")
    factor = model.class_factor
    if factor is None:
        if not dataset.categorical_factors:
            raise NotApplicable(f"dataset {dataset.name!r} has no categorical factor")
        factor = dataset.categorical_factors[0]
    if samples_per_class < 1 or classifier_images < 2 or classifier_steps < 1:
        raise UsageError("conditional_accuracy: samples_per_class and classifier_steps must "
                         "be >= 1, classifier_images >= 2")
    device = model.device
    net, held_out = fitted_classifier(dataset, factor, classifier_images, classifier_steps,
                                      device)
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    with eval_mode(model):
        images = torch.cat([model.generate_class(samples_per_class, k, generator)
                            for k in range(model.num_classes)])
    classes = np.repeat(np.arange(model.num_classes), samples_per_class)
    scores = conditional_accuracy(classes, predict(net, images, device),
                                  dataset.factor_sizes[dataset.factor_names.index(factor)],
                                  matched=model.class_factor is None)
    return {**scores, "conditional_accuracy.classifier": held_out}


def images(dataset: FactorDataset, samples_per_class: int, classifier_images: int,
           classifier_steps: int) -> int:
    """Factor rows asked of the observer: none (the images scored are generated)."""
    return 0


METRIC = Metric("conditional_accuracy",
                "Generated images of class k classified as k by a CNN trained on real images",
                conditional_accuracy, score, images,
                source='Odena et al., ICML 2017 (AC-GAN); Miyato and Koyama, ICLR 2018',
                cost='trains a small CNN judge on real images')


@disentangle.hookimpl
def disentangle_register_metrics() -> list[Metric]:
    return [METRIC]
