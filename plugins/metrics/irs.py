"""Interventional robustness score, IRS (Suter et al. 2019), as in the reference protocol.

Factors are first cut into 20 histogram bins (as the reference does; dSprites' 40
orientations become 20 groups). For code ``i`` and factor ``j``: within each group of points
sharing factor ``j``'s bin, the ``diff_quantile`` quantile of ``|z_i - E[z_i | group]|``;
averaged over the groups and divided by code ``i``'s largest deviation from its mean, this
is how much the code still moves when factor ``j`` is held. A code's score is ``1 -`` its
smallest such ratio; IRS is the mean over codes weighted by their largest deviations.
Constant codes are dropped first.
"""

from __future__ import annotations

import numpy as np

import disentangle
from disentangle.datasets import FactorDataset
from disentangle.errors import NotApplicable
from disentangle.metrics import Metric, Observer, discretize


def held_deviation(codes: np.ndarray, groups: np.ndarray, quantile: float) -> np.ndarray:
    """Mean over the values of ``groups`` ``[N]`` of the ``quantile`` of each code's absolute
    deviation from its group mean: ``[d]``."""
    per_group = []
    for value in np.unique(groups):
        members = codes[groups == value]
        per_group.append(np.quantile(np.abs(members - members.mean(axis=0)), quantile, axis=0))
    return np.mean(per_group, axis=0)


def irs(codes: np.ndarray, factors: np.ndarray, diff_quantile: float = 0.99,
        bins: int = 20) -> dict[str, float]:
    """IRS of codes ``[N, d]`` for factors ``[N, K]``: ``"irs"`` and ``"irs.active_codes"``.

    With no varying code IRS is 0, as in the reference.
    """
    codes = np.asarray(codes, dtype=np.float64)
    if factors.shape[1] == 0:
        raise NotApplicable("IRS needs at least one factor")
    codes = codes[:, codes.var(axis=0) > 0]
    if codes.shape[1] == 0:
        return {"irs": 0.0, "irs.active_codes": 0.0}
    groups = discretize(factors, bins)
    largest = np.abs(codes - codes.mean(axis=0)).max(axis=0)  # > 0 for every kept code
    held = np.stack([held_deviation(codes, groups[:, j], diff_quantile)
                     for j in range(groups.shape[1])], axis=1)  # [d, K]
    per_code = (1.0 - held / largest[:, None]).max(axis=1)
    return {"irs": float(np.average(per_code, weights=largest)),
            "irs.active_codes": float(codes.shape[1])}


def score(observer: Observer, rng: np.random.Generator, num_points: int = 10_000,
          diff_quantile: float = 0.99, bins: int = 20) -> dict[str, float]:
    """IRS on the evaluation's shared uniform draw of ``num_points`` combinations."""
    codes, factors = observer.shared_sample(num_points)
    return irs(codes.codes(), factors, diff_quantile, bins)


def images(dataset: FactorDataset, num_points: int, diff_quantile: float, bins: int) -> int:
    """Factor rows asked for: the sample."""
    return num_points


METRIC = Metric("irs", "Interventional robustness score (0.99 quantile of held deviations)",
                irs, score, images,
                source='Suter et al., ICML 2019 (interventional robustness)',
                cost='histograms; cheap')


@disentangle.hookimpl
def disentangle_register_metrics() -> list[Metric]:
    return [METRIC]
