"""The metric protocol, and every registered metric's array-level core by name.

A metric has two parts, kept apart on purpose:

* ``core(...)``: a pure function of arrays (codes ``[N, d]``, factors ``[N, K]`` int, ...)
  returning named scores. Tests call it on representations with known answers.
* ``score(observer, rng, **params)``: the sampling protocol. It draws factor combinations
  from ``observer.dataset``, asks ``observer`` for their codes, and calls ``core``.

This module is the bottom of the metric stack: it imports no other part of the core at run
time, and knows the evaluator's observer only as the :class:`Observer` protocol. The
first-party cores are imported by name in :mod:`disentangle.cores`; any registered metric's
core, third-party ones included, is ``registry.metric(name).core``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from disentangle.datasets import FactorDataset
    from disentangle.models import Model, Representation


class Observer(Protocol):
    """What a metric's sampler is given: the model scored, the dataset to draw factor rows
    from, and a call that returns the model's codes for the images at those rows (the
    evaluator's :class:`disentangle.evaluation.Observer` is one)."""

    model: Model
    dataset: FactorDataset

    def __call__(self, factors: np.ndarray, rng: np.random.Generator) -> Representation:
        """The representation of the images at factor rows ``[n, K]``."""

    def shared_sample(self, num_points: int) -> tuple[Representation, np.ndarray]:
        """The representation and factors ``[n, K]`` of the evaluation's one uniform draw of
        ``num_points`` combinations: every metric asking for that many uniform points gets
        the same points, drawn and encoded once, and drawn from the evaluation's seed
        alone, so a metric scored by itself sees them too."""


@dataclass(frozen=True)
class Metric:
    """A registered metric: its name, a one-line summary, its core and its sampler.

    ``images(dataset, **params)``, when given, says how many factor rows ``score`` asks the
    observer for under its resolved parameters (every keyword of ``score``). The evaluator
    adds these up to decide whether encoding the dataset's whole factor grid once is cheaper
    than encoding the samples; a metric without it is not counted in that decision.
    ``source`` names the paper that defines it and ``cost`` the work it does beyond
    encoding, as ``disentangle show`` prints them.
    """

    name: str
    summary: str
    core: Callable[..., dict[str, float]]
    score: Callable[..., dict[str, float]]
    images: Callable[..., int] | None = None
    source: str = ""
    cost: str = ""

    def __call__(self, observer: Observer, rng: np.random.Generator,
                 **params: Any) -> dict[str, float]:
        return self.score(observer, rng, **params)

    def parameters(self) -> dict[str, Any]:
        """The sampler's parameters and their defaults (every keyword after observer, rng)."""
        listed = list(inspect.signature(self.score).parameters.values())[2:]
        return {p.name: p.default for p in listed}

    def resolve(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """``params`` over the defaults; an unknown name is an error that lists the known ones."""
        resolved = self.parameters()
        unknown = set(params or {}) - set(resolved)
        if unknown:
            raise ValueError(f"metric {self.name!r} has no parameter "
                             f"{', '.join(sorted(unknown))}; it has: {', '.join(resolved)}")
        resolved.update(params or {})
        return resolved

    def images_requested(self, dataset: FactorDataset,
                         params: dict[str, Any] | None = None) -> int | None:
        """Factor rows ``score`` will ask for with ``params``; None when it does not say."""
        if self.images is None:
            return None
        return int(self.images(dataset, **self.resolve(params)))


def factor_labels(names: Sequence[str] | None, count: int) -> list[str]:
    """Names for per-factor scores: the given ones, or ``factor0``, ``factor1``... by default."""
    if names is None:
        return [f"factor{j}" for j in range(count)]
    if len(names) != count:
        raise ValueError(f"{len(names)} factor names for {count} factors")
    return list(names)


def sample_codes(observer: Observer, num_points: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Codes ``[n, d]`` (all codes as floats) and factors ``[n, K]`` of ``num_points``
    combinations drawn uniformly from the observer's dataset."""
    factors = observer.dataset.sample_factors(num_points, rng)
    return observer(factors, rng).codes(), factors


def varied_factor_batches(dataset: FactorDataset, num_batches: int, batch_size: int,
                          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Batches of factor rows in which every factor but one, drawn per batch, is held.

    Returns ``factors`` ``[num_batches, batch_size, K]`` and ``varied`` ``[num_batches]``:
    each batch repeats one uniform row, with the varied factor drawn uniformly per row.
    """
    varied = rng.integers(0, dataset.num_factors, num_batches)
    held = dataset.sample_factors(num_batches, rng)
    fresh = dataset.sample_factors(num_batches * batch_size, rng)
    factors = np.repeat(held[:, None, :], batch_size, axis=1)
    batches = np.arange(num_batches)
    factors[batches, :, varied] = fresh.reshape(num_batches, batch_size, -1)[batches, :, varied]
    return factors, varied


def fixed_factor_batches(dataset: FactorDataset, num_batches: int, batch_size: int,
                         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Batches of factor rows in which one factor, drawn per batch, is held at one value.

    Returns ``factors`` ``[num_batches, batch_size, K]`` and ``fixed`` ``[num_batches]``, the
    held factor of each batch; the held value is the batch's first row's (the reference
    protocol's FactorVAE draw), every other entry is uniform.
    """
    fixed = rng.integers(0, dataset.num_factors, num_batches)
    factors = dataset.sample_factors(num_batches * batch_size, rng)
    factors = factors.reshape(num_batches, batch_size, dataset.num_factors)
    batches = np.arange(num_batches)
    factors[batches, :, fixed] = factors[batches, 0, fixed][:, None]
    return factors, fixed


def batch_codes(observer: Observer, factors: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    """Codes of batched factor rows ``[B, L, K]`` as ``[B, L, d]`` (one observer call)."""
    flat = factors.reshape(-1, factors.shape[-1])
    return observer(flat, rng).codes().reshape(*factors.shape[:-1], -1)


def discretize(codes: np.ndarray, bins: int = 20) -> np.ndarray:
    """Each code column cut into ``bins`` equal-width bins over its own sample range.

    This is the histogram discretisation of the reference protocol
    (``np.digitize(x, np.histogram(x, bins)[1][:-1])``), so bin labels run from 1 to
    ``bins``. A column of at most ``bins`` consecutive integers (a categorical code) keeps
    one bin per value.
    """
    codes = np.asarray(codes, dtype=np.float64)
    out = np.empty(codes.shape, dtype=np.int64)
    for i in range(codes.shape[1]):
        edges = np.histogram(codes[:, i], bins)[1]
        out[:, i] = np.digitize(codes[:, i], edges[:-1])
    return out


def _dense_labels(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels renumbered 0..n_values-1 (in sorted order), and n_values."""
    values, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(-1), len(values)


def mutual_info_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Discrete mutual information in nats between every column of ``a`` and of ``b``.

    ``a`` is ``[N, p]`` and ``b`` is ``[N, q]`` integer labels; entry ``[i, j]`` equals
    ``sklearn.metrics.mutual_info_score(a[:, i], b[:, j])`` (the same plug-in estimate,
    computed from one contingency table per pair without per-call validation).
    """
    a, b = np.asarray(a), np.asarray(b)
    n = len(a)
    dense_a = [_dense_labels(a[:, i]) for i in range(a.shape[1])]
    dense_b = [_dense_labels(b[:, j]) for j in range(b.shape[1])]
    result = np.zeros((a.shape[1], b.shape[1]))
    for i, (la, na) in enumerate(dense_a):
        count_a = np.bincount(la, minlength=na)
        for j, (lb, nb) in enumerate(dense_b):
            if na == 1 or nb == 1:
                continue
            joint = np.bincount(la * nb + lb, minlength=na * nb).reshape(na, nb)
            rows, cols = np.nonzero(joint)
            counts = joint[rows, cols]
            outer = count_a[rows] * np.bincount(lb, minlength=nb)[cols]
            terms = counts / n * (np.log(counts) + np.log(n) - np.log(outer))
            terms[np.abs(terms) < np.finfo(np.float64).eps] = 0.0
            result[i, j] = max(terms.sum(), 0.0)
    return result


def entropies(labels: np.ndarray) -> np.ndarray:
    """Plug-in entropy in nats of each column of integer ``labels`` ``[N, q]``."""
    labels = np.asarray(labels)
    result = np.zeros(labels.shape[1])
    for j in range(labels.shape[1]):
        dense, n_values = _dense_labels(labels[:, j])
        p = np.bincount(dense, minlength=n_values) / len(dense)
        result[j] = -(p * np.log(p)).sum()
    return result


def normalized_entropy(weights: np.ndarray, axis: int) -> np.ndarray:
    """Entropy of ``weights`` normalised to sum 1 along ``axis``, in base ``weights.shape[axis]``.

    Values lie in [0, 1]: 0 for all weight on one entry, 1 for equal weights. (This is
    ``scipy.stats.entropy(weights, base=weights.shape[axis], axis=axis)``.)
    """
    p = weights / weights.sum(axis=axis, keepdims=True)
    logs = np.log(p, out=np.zeros_like(p), where=p > 0)
    return -(p * logs).sum(axis=axis) / np.log(weights.shape[axis])

