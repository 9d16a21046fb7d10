"""InfoMEC: InfoM, InfoE and InfoC (Hsu et al., NeurIPS 2023, "Disentanglement via latent
quantization").

From the normalised mutual information ``NMI[k, j] = I(s_k; z_j) / H(s_k)`` of every
factor (source) ``s_k`` with every code ``z_j``:

* **InfoM** (modularity): each active code's share of its information that goes to its
  best factor, ``max_k NMI[k, j] / sum_k NMI[k, j]``, averaged over active codes and
  rescaled from its floor ``1/K``: ``(mean - 1/K) / (1 - 1/K)``.
* **InfoC** (compactness): the same with factors and active codes swapped; each factor's
  share that goes to its best code, rescaled from ``1/n_active``.
* **InfoE** (explicitness): for each factor, the predictive information of a multinomial
  logistic regression on all codes, ``(L_0 - L) / L_0`` with ``L`` its log loss and ``L_0``
  that of the same regression without inputs; averaged over factors.

All three lie in [0, 1]; 1 is best. The choices, as in the authors' implementation:
continuous codes are standardised and their information with each factor is the
nearest-neighbour estimate (``mutual_info_classif``, 10 neighbours); categorical codes
use the plug-in estimate; entropies are plug-in, in nats. A continuous code is active
when its range exceeds a twentieth of the largest range, a categorical one when it takes
two values. The regression is unregularised with balanced class weights, scored on the
points it was fitted to; with balanced weights the input-free regression predicts every
class equally, so ``L_0 = log K``. Where an active code (or a factor) has no information
at all its share is taken as spread evenly, ``1/K`` (``1/n_active``), rather than the
implementation's 0/0. The score uses the evaluation's shared uniform draw.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_selection import mutual_info_classif
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

import disentangle
from disentangle.datasets import FactorDataset
from disentangle.errors import NotApplicable
from disentangle.metrics import Metric, Observer, entropies, mutual_info_matrix


def _standardized(codes: np.ndarray) -> np.ndarray:
    spread = codes.std(axis=0)
    return (codes - codes.mean(axis=0)) / np.where(spread > 0, spread, 1.0)


def normalized_information(continuous: np.ndarray, categorical: np.ndarray,
                           factors: np.ndarray, neighbors: int = 10,
                           seed: int = 0) -> np.ndarray:
    """``NMI [K, d + m]`` of integer factors ``[N, K]`` (each varying) with continuous
    ``[N, d]`` then categorical ``[N, m]`` codes."""
    columns, scaled = [], _standardized(continuous)
    for k in range(factors.shape[1]):
        row = [mutual_info_classif(scaled, factors[:, k],
                                   discrete_features=False, n_neighbors=neighbors,
                                   random_state=seed)] if continuous.shape[1] else []
        if categorical.shape[1]:
            row.append(mutual_info_matrix(categorical, factors[:, k:k + 1])[:, 0])
        columns.append(np.concatenate(row))
    return np.array(columns) / entropies(factors)[:, None]


def _best_share(matrix: np.ndarray) -> np.ndarray:
    """Per column, the largest entry over the column sum (``1/rows`` for an all-zero one)."""
    total = matrix.sum(axis=0)
    safe = np.where(total > 0, total, 1.0)
    return np.where(total > 0, matrix.max(axis=0) / safe, 1.0 / len(matrix))


def modularity_compactness(nmi: np.ndarray) -> tuple[float, float]:
    """InfoM and InfoC of a normalised information matrix ``[K, n]`` of active codes."""
    num_factors, num_codes = nmi.shape
    infom = (_best_share(nmi).mean() - 1 / num_factors) / (1 - 1 / num_factors)
    infoc = (_best_share(nmi.T).mean() - 1 / num_codes) / (1 - 1 / num_codes)
    return float(infom), float(infoc)


def explicitness(continuous: np.ndarray, categorical: np.ndarray,
                 factors: np.ndarray) -> np.ndarray:
    """InfoE per factor: ``1 - L / log K`` of an unregularised, class-balanced logistic
    regression from all codes (continuous standardised, categorical one-hot)."""
    one_hot = [(categorical[:, [j]] == np.unique(categorical[:, j])).astype(np.float64)
               for j in range(categorical.shape[1])]
    inputs = np.concatenate([_standardized(continuous), *one_hot], axis=1)
    values = []
    for k in range(factors.shape[1]):
        regression = LogisticRegression(C=np.inf, class_weight="balanced", max_iter=100)
        with warnings.catch_warnings():
            # the authors' 100 iterations are part of the definition
            warnings.simplefilter("ignore", ConvergenceWarning)
            regression.fit(inputs, factors[:, k])
        loss = log_loss(factors[:, k], regression.predict_proba(inputs),
                        labels=regression.classes_)
        values.append(1.0 - loss / np.log(len(regression.classes_)))
    return np.array(values)


def infomec(continuous: np.ndarray, categorical: np.ndarray, factors: np.ndarray,
            neighbors: int = 10, seed: int = 0) -> dict[str, float]:
    """InfoM, InfoC and InfoE of continuous ``[N, d]`` and categorical ``[N, m]`` codes for
    integer factors ``[N, K]``: ``"infomec.infom"``, ``"infomec.infoc"``,
    ``"infomec.infoe"``, ``"infomec.active_codes"``; the headline ``"infomec"`` is InfoM.
    ``seed`` fixes the nearest-neighbour estimator's jitter."""
    continuous = np.asarray(continuous, dtype=np.float64)
    categorical = np.asarray(categorical).reshape(len(continuous), -1)
    factors = np.asarray(factors)
    factors = factors[:, entropies(factors) > 0]
    if factors.shape[1] < 2:
        raise NotApplicable("InfoMEC needs at least two factors that vary")
    nmi = normalized_information(continuous, categorical, factors, neighbors, seed)
    ranges = np.ptp(continuous, axis=0) if continuous.shape[1] else np.zeros(0)
    active = np.concatenate([ranges > (ranges.max(initial=0.0) / 20),
                             np.ptp(categorical, axis=0) > 0])
    if active.sum() < 2:
        raise NotApplicable("InfoMEC needs at least two active codes")
    infom, infoc = modularity_compactness(nmi[:, active])
    infoe = explicitness(continuous, categorical, factors).mean()
    return {"infomec": infom, "infomec.infom": infom, "infomec.infoc": infoc,
            "infomec.infoe": float(infoe),
            "infomec.active_codes": float(active.sum())}


def score(observer: Observer, rng: np.random.Generator, num_points: int = 10_000,
          neighbors: int = 10) -> dict[str, float]:
    """InfoMEC on the evaluation's shared uniform draw of ``num_points`` combinations."""
    codes, factors = observer.shared_sample(num_points)
    return infomec(codes.continuous, codes.categorical, factors, neighbors,
                   int(rng.integers(2**31)))


def images(dataset: FactorDataset, num_points: int, neighbors: int) -> int:
    """Factor rows asked for: the shared sample."""
    return num_points


METRIC = Metric("infomec", "InfoMEC: InfoM (modularity), InfoC (compactness), InfoE "
                           "(logistic explicitness) from normalised mutual information",
                infomec, score, images,
                source='Hsu et al., NeurIPS 2023 (latent quantization)',
                cost="a nearest-neighbour MI estimate per (code, factor), a logistic "
                     "regression per factor")


@disentangle.hookimpl
def disentangle_register_metrics() -> list[Metric]:
    return [METRIC]
