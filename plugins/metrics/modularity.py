"""Modularity and explicitness (Ridgeway and Mozer 2018), as in the reference protocol.

Modularity: with ``m[i, j]`` the mutual information between code ``i`` (20 histogram bins)
and factor ``j``, code ``i`` scores ``1 - (sum_j m_ij^2 - max_j m_ij^2) / (max_j m_ij^2
(K - 1))`` (0 when it carries no information); modularity is the mean over codes.

Explicitness: codes standardised with the training points' mean and standard deviation; a
logistic regression per factor (scikit-learn defaults written out: L2, C = 1, lbfgs, 100
iterations); its macro-averaged one-vs-rest ROC AUC, averaged over factors, on the training
and on the test points.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

import disentangle
from disentangle.datasets import FactorDataset
from disentangle.errors import NotApplicable
from disentangle.metrics import Metric, Observer, discretize, mutual_info_matrix, sample_codes


def modularity_of(info: np.ndarray) -> float:
    """Mean modularity of the codes of a mutual-information matrix ``[d, K]``."""
    squared = info**2
    top = squared.max(axis=1)
    spread = squared.sum(axis=1) - top
    with np.errstate(divide="ignore", invalid="ignore"):
        per_code = 1.0 - spread / (top * (squared.shape[1] - 1))
    return float(np.where(top > 0, per_code, 0.0).mean())


def auc(labels: np.ndarray, probabilities: np.ndarray, classes: np.ndarray) -> float:
    """Macro one-vs-rest ROC AUC of class ``probabilities`` ``[N, C]`` (columns: ``classes``)."""
    indicator = labels[:, None] == classes[None, :]
    present = indicator.any(axis=0) & ~indicator.all(axis=0)
    return float(roc_auc_score(indicator[:, present], probabilities[:, present],
                               average="macro"))


def explicitness(train_codes: np.ndarray, train_factors: np.ndarray, test_codes: np.ndarray,
                 test_factors: np.ndarray) -> tuple[float, float]:
    """Mean over factors of the logistic regressions' ROC AUC: (train, test)."""
    mean, std = train_codes.mean(axis=0), train_codes.std(axis=0)
    std = np.where(std > 0, std, 1.0)  # a constant code stays constant (zero)
    train_codes, test_codes = (train_codes - mean) / std, (test_codes - mean) / std
    train_auc, test_auc = [], []
    for j in range(train_factors.shape[1]):
        if len(np.unique(train_factors[:, j])) < 2:
            raise NotApplicable(f"factor {j} does not vary in the training sample")
        classifier = LogisticRegression(C=1.0, solver="lbfgs", max_iter=100)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            classifier.fit(train_codes, train_factors[:, j])
        train_auc.append(auc(train_factors[:, j], classifier.predict_proba(train_codes),
                             classifier.classes_))
        test_auc.append(auc(test_factors[:, j], classifier.predict_proba(test_codes),
                            classifier.classes_))
    return float(np.mean(train_auc)), float(np.mean(test_auc))


def modularity(train_codes: np.ndarray, train_factors: np.ndarray, test_codes: np.ndarray,
               test_factors: np.ndarray, bins: int = 20) -> dict[str, float]:
    """``"modularity"``, ``"modularity.explicitness"`` (test AUC) and
    ``"modularity.explicitness_train"`` of codes ``[N, d]`` for integer factors ``[N, K]``."""
    train_codes = np.asarray(train_codes, dtype=np.float64)
    test_codes = np.asarray(test_codes, dtype=np.float64)
    info = mutual_info_matrix(discretize(train_codes, bins), train_factors)
    train_auc, test_auc = explicitness(train_codes, train_factors, test_codes, test_factors)
    return {"modularity": modularity_of(info), "modularity.explicitness": test_auc,
            "modularity.explicitness_train": train_auc}


def score(observer: Observer, rng: np.random.Generator, num_train: int = 10_000,
          num_test: int = 5_000, bins: int = 20) -> dict[str, float]:
    """``num_train`` then ``num_test`` uniform draws."""
    train_codes, train_factors = sample_codes(observer, num_train, rng)
    test_codes, test_factors = sample_codes(observer, num_test, rng)
    return modularity(train_codes, train_factors, test_codes, test_factors, bins)


def images(dataset: FactorDataset, num_train: int, num_test: int, bins: int) -> int:
    """Factor rows asked for: the training and the test points."""
    return num_train + num_test


METRIC = Metric("modularity", "Modularity (mutual information) and explicitness "
                              "(logistic-regression ROC AUC)", modularity, score, images,
                source='Ridgeway and Mozer, NeurIPS 2018',
                cost='a one-vs-rest logistic regression per factor value')


@disentangle.hookimpl
def disentangle_register_metrics() -> list[Metric]:
    return [METRIC]
