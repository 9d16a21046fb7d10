"""Accuracy of categorical codes as classifiers of the dataset's categorical factors.

A categorical code (InfoGAN's 10-way code on MNIST, say) is scored against each
categorical factor by mapping code values to factor values and counting agreements:

* one-to-one (Hungarian, ``scipy.optimize.linear_sum_assignment``) when the code has as
  many values as the factor: the standard clustering accuracy;
* majority vote (each code value mapped to its most frequent factor value) otherwise,
  and always reported as well: it is never lower and inflates with more code values.

The representation gives chosen classes, not the number of classes a code has. A code's
number of values is taken as ``max(factor size, largest observed value + 1)``: a code with
as many classes as the factor therefore gets the one-to-one mapping even when the sample
misses some of its values, and a code seen taking more values than the factor has gets
majority vote.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

import disentangle
from disentangle.datasets import FactorDataset
from disentangle.errors import NotApplicable
from disentangle.metrics import Metric, Observer, factor_labels


def mapped_accuracies(code: np.ndarray, factor: np.ndarray,
                      factor_size: int) -> tuple[float, float]:
    """(accuracy under the protocol's mapping, majority-vote accuracy) of one code."""
    code_size = max(factor_size, int(code.max()) + 1)
    confusion = np.bincount(code * factor_size + factor,
                            minlength=code_size * factor_size).reshape(code_size, factor_size)
    majority = float(confusion.max(axis=1).sum() / len(code))
    if code_size != factor_size:
        return majority, majority
    rows, cols = linear_sum_assignment(confusion, maximize=True)
    return float(confusion[rows, cols].sum() / len(code)), majority


def categorical_accuracy(codes: np.ndarray, factors: np.ndarray,
                         factor_sizes: Sequence[int] | None = None,
                         factor_names: Sequence[str] | None = None) -> dict[str, float]:
    """Best mapped accuracy of integer ``codes`` ``[N, m]`` for each factor of ``factors``.

    ``factors`` ``[N, K]`` are the categorical factors only; ``factor_sizes`` default to
    the largest observed value + 1. Returns ``"categorical_accuracy"`` (the best factor),
    ``"categorical_accuracy.<factor>"`` (best code for each factor) and
    ``"categorical_accuracy_majority"`` (the best majority-vote accuracy).
    """
    codes, factors = np.asarray(codes), np.asarray(factors)
    if codes.shape[1] == 0:
        raise NotApplicable("the representation has no categorical code")
    if factors.shape[1] == 0:
        raise NotApplicable("the dataset has no categorical factor")
    if not np.issubdtype(codes.dtype, np.integer) or codes.min() < 0:
        raise ValueError("categorical codes must be non-negative integers")
    if factor_sizes is None:
        factor_sizes = factors.max(axis=0) + 1
    names = factor_labels(factor_names, factors.shape[1])
    scores = {}
    best_majority = 0.0
    for j, name in enumerate(names):
        pairs = [mapped_accuracies(codes[:, i], factors[:, j], int(factor_sizes[j]))
                 for i in range(codes.shape[1])]
        scores[f"categorical_accuracy.{name}"] = max(mapped for mapped, _ in pairs)
        best_majority = max(best_majority, max(majority for _, majority in pairs))
    return {"categorical_accuracy": max(scores.values()), **scores,
            "categorical_accuracy_majority": best_majority}


def score(observer: Observer, rng: np.random.Generator,
          num_points: int = 10_000) -> dict[str, float]:
    """Accuracy on ``num_points`` factor combinations drawn uniformly from the dataset."""
    dataset = observer.dataset
    if not dataset.categorical_factors:
        raise NotApplicable(f"dataset {dataset.name!r} has no categorical factor")
    columns = [dataset.factor_names.index(name) for name in dataset.categorical_factors]
    factors = dataset.sample_factors(num_points, rng)
    if observer(factors[:1], rng).categorical.shape[1] == 0:
        raise NotApplicable("the model has no categorical code")
    codes = observer(factors, rng).categorical
    return categorical_accuracy(codes, factors[:, columns],
                                [dataset.factor_sizes[j] for j in columns],
                                list(dataset.categorical_factors))


def images(dataset: FactorDataset, num_points: int) -> int:
    """Factor rows asked for: the sample (and one row to check for a categorical code)."""
    return num_points + 1


METRIC = Metric("categorical_accuracy",
                "Accuracy of categorical codes on categorical factors (Hungarian / majority)",
                categorical_accuracy, score, images,
                source='Chen et al., NeurIPS 2016 (InfoGAN)',
                cost='a Hungarian matching per categorical code')


@disentangle.hookimpl
def disentangle_register_metrics() -> list[Metric]:
    return [METRIC]
