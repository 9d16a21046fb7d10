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
from disentangle.codefactor import information, top_two
from disentangle.datasets import FactorDataset
from disentangle.metrics import Metric, Observer


def mig(codes: np.ndarray, factors: np.ndarray, bins: int = 20,
        factor_names: Sequence[str] | None = None) -> dict[str, float]:
    """MIG of ``codes`` ``[N, d]`` against integer ``factors`` ``[N, K]``.

    Returns ``"mig"`` and one ``"mig.<factor>"`` gap per factor. With a single code the
    second-best information is taken as 0. Factors that do not vary in the sample have no
    entropy to normalise by: they get no entry and are left out of the mean.
    """
    info, entropy, _, names = information(codes, factors, bins, factor_names)
    _, top, second = top_two(info)
    gaps = (top - second) / entropy
    scores = {"mig": float(gaps.mean())}
    scores.update({f"mig.{name}": float(g) for name, g in zip(names, gaps)})
    return scores


def score(observer: Observer, rng: np.random.Generator, num_points: int = 10_000,
          bins: int = 20) -> dict[str, float]:
    """MIG on the evaluation's shared uniform draw of ``num_points`` combinations."""
    codes, factors = observer.shared_sample(num_points)
    return mig(codes.codes(), factors, bins, observer.dataset.factor_names)


def images(dataset: FactorDataset, num_points: int, bins: int) -> int:
    """Factor rows asked for: the sample."""
    return num_points


METRIC = Metric("mig", "Mutual information gap (20-bin histogram, normalised by entropy)",
                mig, score, images,
                source='Chen et al., NeurIPS 2018 (beta-TCVAE)',
                cost='histograms; cheap')


@disentangle.hookimpl
def disentangle_register_metrics() -> list[Metric]:
    return [METRIC]
