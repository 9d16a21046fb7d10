"""The metric protocol, and every registered metric's array-level core by name.

A metric has two parts, kept apart on purpose:

* ``core(...)``: a pure function of arrays (codes ``[N, d]``, factors ``[N, K]`` int, ...)
  returning named scores. Tests call it on representations with known answers.
* ``score(observer, rng, **params)``: the sampling protocol. It draws factor combinations
  from ``observer.dataset``, asks ``observer`` for their codes, and calls ``core``.

``disentangle.metrics.mig(codes, factors)`` is the registered ``mig`` metric's core, and so
on for every metric plugin, third-party ones included.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from disentangle.evaluation import Observer


@dataclass(frozen=True)
class Metric:
    """A registered metric: its name, a one-line summary, its core and its sampler."""

    name: str
    summary: str
    core: Callable[..., dict[str, float]]
    score: Callable[..., dict[str, float]]

    def __call__(self, observer: Observer, rng: np.random.Generator,
                 **params: Any) -> dict[str, float]:
        return self.score(observer, rng, **params)


def factor_labels(names: Sequence[str] | None, count: int) -> list[str]:
    """Names for per-factor scores: the given ones, or ``factor0``, ``factor1``... by default."""
    if names is None:
        return [f"factor{j}" for j in range(count)]
    if len(names) != count:
        raise ValueError(f"{len(names)} factor names for {count} factors")
    return list(names)


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


def __getattr__(name: str) -> Callable[..., dict[str, float]]:
    if name.startswith("__"):
        raise AttributeError(name)
    from disentangle.registry import get_registry

    entry = get_registry().entries["metric"].get(name)
    if entry is None:
        raise AttributeError(f"no metric named {name!r} is registered")
    return entry.obj.core
