"""Scores of the codes alone, no factors needed (the reference protocol's unsupervised ones).

* ``gaussian_total_correlation``: total correlation of a Gaussian with the codes'
  covariance ``S``: ``(sum_i log S_ii - log det S) / 2`` nats. Constant codes are dropped
  first: they are independent of the rest and add nothing.
* ``gaussian_wasserstein_correlation``: squared 2-Wasserstein distance between
  ``N(0, S)`` and ``N(0, diag S)``, ``2 tr S - 2 tr (D^1/2 S D^1/2)^1/2`` with ``D = diag S``;
  ``.normalized`` divides it by ``tr S``.
* ``pairwise_mutual_info``: mean mutual information (nats) over ordered pairs of distinct
  codes, each cut into 20 histogram bins.

All three are 0 for independent codes. They score the same points: the evaluation's
shared uniform draw of ``num_points`` combinations, drawn and encoded once.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import disentangle
from disentangle.datasets import FactorDataset
from disentangle.errors import NotApplicable
from disentangle.metrics import Metric, Observer, discretize, mutual_info_matrix


def _covariance(codes: np.ndarray) -> np.ndarray:
    codes = np.asarray(codes, dtype=np.float64)
    if codes.shape[1] < 2:
        raise NotApplicable("a dependence between codes needs at least two codes")
    return np.atleast_2d(np.cov(codes, rowvar=False))


def gaussian_total_correlation(codes: np.ndarray) -> dict[str, float]:
    """Total correlation (nats) of the Gaussian fitted to codes ``[N, d]``."""
    covariance = _covariance(codes)
    varies = np.diag(covariance) > 0
    covariance = covariance[np.ix_(varies, varies)]
    sign, logdet = np.linalg.slogdet(covariance)
    value = 0.5 * (np.log(np.diag(covariance)).sum() - logdet) if sign > 0 else np.inf
    return {"gaussian_total_correlation": float(value)}


def gaussian_wasserstein_correlation(codes: np.ndarray) -> dict[str, float]:
    """Squared W2 distance between the codes' Gaussian and its independent version."""
    covariance = _covariance(codes)
    scale = np.sqrt(np.diag(covariance))
    # (D S)^1/2 has the eigenvalues of the symmetric D^1/2 S D^1/2, so its trace is theirs
    eigenvalues = np.linalg.eigvalsh(scale[:, None] * covariance * scale[None, :])
    distance = 2 * np.trace(covariance) - 2 * np.sqrt(np.clip(eigenvalues, 0, None)).sum()
    return {"gaussian_wasserstein_correlation": float(distance),
            "gaussian_wasserstein_correlation.normalized": float(distance
                                                                 / np.trace(covariance))}


def pairwise_mutual_info(codes: np.ndarray, bins: int = 20) -> dict[str, float]:
    """Mean discrete mutual information (nats) between distinct codes ``[N, d]``."""
    codes = np.asarray(codes, dtype=np.float64)
    d = codes.shape[1]
    if d < 2:
        raise NotApplicable("a dependence between codes needs at least two codes")
    binned = discretize(codes, bins)
    info = mutual_info_matrix(binned, binned)
    np.fill_diagonal(info, 0.0)
    return {"pairwise_mutual_info": float(info.sum() / (d * d - d))}


def _sampler(core: Callable[[np.ndarray], dict[str, float]]
             ) -> Callable[..., dict[str, float]]:
    def score(observer: Observer, rng: np.random.Generator,
              num_points: int = 10_000) -> dict[str, float]:
        """The core on the codes of the evaluation's shared uniform draw of ``num_points``
        combinations (one draw and one encoding for all three scores)."""
        codes, _ = observer.shared_sample(num_points)
        return core(codes.codes())
    return score


def images(dataset: FactorDataset, num_points: int) -> int:
    """Factor rows asked for: the sample."""
    return num_points


METRICS = [
    Metric("gaussian_total_correlation", "Total correlation of a Gaussian fit to the codes "
                                         "(unsupervised)",
           gaussian_total_correlation, _sampler(gaussian_total_correlation), images,
           source='Locatello et al., ICML 2019 (the reference study)',
           cost='a covariance; cheap'),
    Metric("gaussian_wasserstein_correlation", "W2 distance of the codes' Gaussian to its "
                                               "independent version (unsupervised)",
           gaussian_wasserstein_correlation, _sampler(gaussian_wasserstein_correlation),
           images,
           source='Locatello et al., ICML 2019 (the reference study)',
           cost='a covariance; cheap'),
    Metric("pairwise_mutual_info", "Mean mutual information between pairs of codes, 20 bins "
                                   "(unsupervised)",
           pairwise_mutual_info, _sampler(pairwise_mutual_info), images,
           source='Locatello et al., ICML 2019 (the reference study)',
           cost='histograms; cheap'),
]


@disentangle.hookimpl
def disentangle_register_metrics() -> list[Metric]:
    return METRICS
