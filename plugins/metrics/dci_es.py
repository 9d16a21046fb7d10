"""DCI-ES: explicitness and size (Eastwood et al., ICLR 2023), beside DCI's D, C and I.

**Explicitness** asks how much probe capacity it takes to read a factor off the codes. For
each factor, probes of growing capacity are fitted on the training points and scored on
the test points; the *loss-capacity curve* is the best test loss reached at or below each
capacity. Its area ``AULCC`` between the smallest and the largest capacity, measured down
to the ideal loss 0, is compared with the area of a probe that never beats the baseline:
``E_k = 1 - AULCC_k / ((c_max - c_min) b_k)``; ``E`` is the mean over factors. 1 means even
the smallest probe reads the factor perfectly; 0 means no probe beats the baseline.

**Size** is ``S = K / d``, the number of factors over the number of codes: 1 for a
representation with one code per factor, smaller for a larger one.

The choices, as in the authors' random-forest setting: probes are scikit-learn random
forests of ``trees`` trees with ``max_depth`` as the capacity (1, 2, 3, 4, 8, 10, ..., 20,
32, on a linear axis); every factor is read as a class and the loss is ``1 - accuracy``;
the baseline ``b_k = 1 - 1/n_k`` is the loss of guessing one of a uniform factor's ``n_k``
values. A loss above the baseline counts as the baseline. Where this differs from the
authors' code: theirs measures the area above the curve's own lowest loss (so a flat
curve scores 1) and divides by half the rectangle; we follow the paper's ideal loss 0.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from joblib import Parallel, delayed
from sklearn.ensemble import RandomForestClassifier
from threadpoolctl import threadpool_limits

import disentangle
from disentangle.datasets import FactorDataset
from disentangle.errors import NotApplicable
from disentangle.metrics import Metric, Observer, factor_labels, sample_codes

#: the authors' random-forest capacities (maximum depths)
DEPTHS = (1, 2, 3, 4, 8, 10, 12, 14, 16, 18, 20, 32)


def explicitness(capacities: np.ndarray, losses: np.ndarray, baseline: float) -> float:
    """``1 - AULCC / ((c_max - c_min) * baseline)`` of test losses at increasing
    ``capacities``, the curve being the running minimum of the losses, capped at the
    baseline."""
    curve = np.minimum.accumulate(np.minimum(np.asarray(losses, dtype=np.float64), baseline))
    capacities = np.asarray(capacities, dtype=np.float64)
    area = float(((curve[1:] + curve[:-1]) / 2 * np.diff(capacities)).sum())
    return 1.0 - area / ((capacities[-1] - capacities[0]) * baseline)


def _curve(train_codes: np.ndarray, train_labels: np.ndarray, test_codes: np.ndarray,
           test_labels: np.ndarray, depths: Sequence[int], trees: int, seed: int
           ) -> np.ndarray:
    """Test losses ``1 - accuracy`` of one factor's forests, one per depth."""
    losses = []
    with threadpool_limits(1, "openmp"):
        for depth in depths:
            forest = RandomForestClassifier(n_estimators=trees, max_depth=depth,
                                            random_state=seed, n_jobs=1)
            forest.fit(train_codes, train_labels)
            losses.append(1.0 - forest.score(test_codes, test_labels))
    return np.array(losses)


def dci_es(train_codes: np.ndarray, train_factors: np.ndarray, test_codes: np.ndarray,
           test_factors: np.ndarray, depths: Sequence[int] = DEPTHS, trees: int = 100,
           seed: int = 0, jobs: int = 0,
           factor_names: Sequence[str] | None = None) -> dict[str, float]:
    """Explicitness ``"dci_es"`` (mean over factors), ``"dci_es.<factor>"`` per factor and
    size ``"dci_es.size"``, for codes ``[N, d]`` and integer factors ``[N, K]``. The
    factors' curves are fitted in ``jobs`` processes (0: one per CPU core)."""
    train_codes = np.asarray(train_codes, dtype=np.float64)
    if train_codes.shape[1] == 0:
        raise NotApplicable("the representation has no codes")
    if len(depths) < 2:
        raise ValueError("a loss-capacity curve needs at least two capacities")
    sizes = [len(np.unique(column)) for column in np.asarray(train_factors).T]
    for j, size in enumerate(sizes):
        if size < 2:
            raise NotApplicable(f"factor {j} does not vary in the training sample")
    workers = min(len(sizes), jobs or os.cpu_count() or 1)
    curves = Parallel(n_jobs=workers)(
        delayed(_curve)(train_codes, train_factors[:, j], test_codes, test_factors[:, j],
                        depths, trees, seed) for j in range(len(sizes)))
    per_factor = [explicitness(np.array(depths), curve, 1.0 - 1.0 / size)
                  for curve, size in zip(curves, sizes)]
    names = factor_labels(factor_names, len(sizes))
    scores = {"dci_es": float(np.mean(per_factor)),
              "dci_es.size": len(sizes) / train_codes.shape[1]}
    scores.update({f"dci_es.{n}": float(e) for n, e in zip(names, per_factor)})
    return scores


def score(observer: Observer, rng: np.random.Generator, num_train: int = 5_000,
          num_test: int = 2_500, trees: int = 100, jobs: int = 0) -> dict[str, float]:
    """``num_train`` then ``num_test`` uniform draws; the forests' seed from ``rng``."""
    train_codes, train_factors = sample_codes(observer, num_train, rng)
    test_codes, test_factors = sample_codes(observer, num_test, rng)
    return dci_es(train_codes, train_factors, test_codes, test_factors, DEPTHS, trees,
                  int(rng.integers(2**31)), jobs, observer.dataset.factor_names)


def images(dataset: FactorDataset, num_train: int, num_test: int, trees: int,
           jobs: int) -> int:
    """Factor rows asked for: the training and the test points."""
    return num_train + num_test


METRIC = Metric("dci_es", "DCI-ES explicitness (area under random-forest loss-capacity "
                          "curves) and size (factors per code)", dci_es, score, images,
                source='Eastwood et al., ICLR 2023 (DCI-ES)',
                cost='12 random forests of 100 trees per factor')


@disentangle.hookimpl
def disentangle_register_metrics() -> list[Metric]:
    return [METRIC]
