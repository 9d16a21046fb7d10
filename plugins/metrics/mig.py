"""Mutual information gap (MIG; Chen et al. 2018), as defined by the reference protocol.

Each code is cut into 20 equal-width bins over the sample; ``m[i, j]`` is the discrete
mutual information between code ``i`` and factor ``j`` in nats. For every factor, the gap
between the two most informative codes, divided by the factor's entropy, is that factor's
score; MIG is their mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

import disentangle
from disentangle.datasets import FactorDataset
from disentangle.errors import NotApplicable
from disentangle.metrics import (
    Metric,
    Observer,
    discretize,
    entropies,
    factor_labels,
    mutual_info_matrix,
)


def mig(codes: np.ndarray, factors: np.ndarray, bins: int = 20,
        factor_names: Sequence[str] | None = None) -> dict[str, float]:
    """MIG of ``codes`` ``[N, d]`` against integer ``factors`` ``[N, K]``.

    Returns ``"mig"`` and one ``"mig.<factor>"`` gap per factor. With a single code the
    second-best information is taken as 0. Factors that do not vary in the sample have no
    entropy to normalise by: they get no entry and are left out of the mean.
    """
    codes, factors = np.asarray(codes), np.asarray(factors)
    if codes.shape[1] == 0:
        raise NotApplicable("the representation has no codes")
    info = mutual_info_matrix(discretize(codes, bins), factors)  # [codes, factors]
    top = -np.sort(-info, axis=0)
    second = top[1] if len(top) > 1 else np.zeros(info.shape[1])
    entropy = entropies(factors)
    varies = entropy > 0
    if not varies.any():
        raise NotApplicable("no factor varies in the sample")
    gaps = (top[0, varies] - second[varies]) / entropy[varies]
    names = np.array(factor_labels(factor_names, factors.shape[1]))[varies]
    scores = {"mig": float(gaps.mean())}
    scores.update({f"mig.{name}": float(g) for name, g in zip(names, gaps)})
    return scores


def score(observer: Observer, rng: np.random.Generator, num_points: int = 10_000,
          bins: int = 20) -> dict[str, float]:
    """MIG on ``num_points`` factor combinations drawn uniformly from the dataset."""
    factors = observer.dataset.sample_factors(num_points, rng)
    codes = observer(factors, rng).codes()
    return mig(codes, factors, bins, observer.dataset.factor_names)


def images(dataset: FactorDataset, num_points: int, bins: int) -> int:
    """Factor rows asked for: the sample."""
    return num_points


METRIC = Metric("mig", "Mutual information gap (20-bin histogram, normalised by entropy)",
                mig, score, images)


@disentangle.hookimpl
def disentangle_register_metrics() -> list[Metric]:
    return [METRIC]
