"""Separated attribute predictability, SAP (Kumar et al. 2018), as in the reference protocol.

For every (code, factor) pair a linear SVM (``LinearSVC(C=0.01, class_weight="balanced")``)
predicts the factor from that single code; ``S[i, j]`` is its test accuracy. A factor's
score is the gap between its two best codes; SAP is the mean over factors. (The reference's
alternative for continuous factors, squared correlations, is the ``continuous`` option.)
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

import disentangle
from disentangle.datasets import FactorDataset
from disentangle.errors import NotApplicable
from disentangle.metrics import Metric, Observer, factor_labels, sample_codes


def svm_accuracies(train_codes: np.ndarray, train_factors: np.ndarray,
                   test_codes: np.ndarray, test_factors: np.ndarray) -> np.ndarray:
    """Test accuracy ``[d, K]`` of a one-code linear SVM for every (code, factor) pair."""
    matrix = np.zeros((train_codes.shape[1], train_factors.shape[1]))
    for i in range(train_codes.shape[1]):
        for j in range(train_factors.shape[1]):
            classifier = LinearSVC(C=0.01, class_weight="balanced")
            with warnings.catch_warnings():
                # liblinear's default 1000 iterations are part of the protocol
                warnings.simplefilter("ignore", ConvergenceWarning)
                classifier.fit(train_codes[:, i:i + 1], train_factors[:, j])
            matrix[i, j] = classifier.score(test_codes[:, i:i + 1], test_factors[:, j])
    return matrix


def squared_correlations(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Squared Pearson correlation ``[d, K]`` of each code with each factor (0 for a
    constant code)."""
    codes = codes - codes.mean(axis=0)
    factors = factors - factors.mean(axis=0)
    n = len(codes) - 1
    covariance = codes.T @ factors / n
    code_var = (codes**2).sum(axis=0) / n
    factor_var = (factors**2).sum(axis=0) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        result = covariance**2 / np.outer(code_var, factor_var)
    return np.where(code_var[:, None] > 1e-12, result, 0.0)


def sap(train_codes: np.ndarray, train_factors: np.ndarray, test_codes: np.ndarray,
        test_factors: np.ndarray, continuous: bool = False,
        factor_names: Sequence[str] | None = None) -> dict[str, float]:
    """SAP of codes ``[N, d]`` for integer factors ``[N, K]``: ``"sap"`` and ``"sap.<factor>"``.

    ``continuous=True`` scores squared correlations on the training points instead of SVM
    accuracies (the test points are then unused).
    """
    train_codes = np.asarray(train_codes, dtype=np.float64)
    if train_codes.shape[1] < 2:
        raise NotApplicable("SAP compares the two best codes and needs at least two codes")
    if continuous:
        matrix = squared_correlations(train_codes, np.asarray(train_factors, dtype=np.float64))
    else:
        matrix = svm_accuracies(train_codes, train_factors, test_codes, test_factors)
    top = np.sort(matrix, axis=0)
    gaps = top[-1] - top[-2]
    names = factor_labels(factor_names, matrix.shape[1])
    return {"sap": float(gaps.mean()), **{f"sap.{n}": float(g) for n, g in zip(names, gaps)}}


def score(observer: Observer, rng: np.random.Generator, num_train: int = 10_000,
          num_test: int = 5_000, continuous: bool = False) -> dict[str, float]:
    """``num_train`` then ``num_test`` uniform draws."""
    train_codes, train_factors = sample_codes(observer, num_train, rng)
    test_codes, test_factors = sample_codes(observer, num_test, rng)
    return sap(train_codes, train_factors, test_codes, test_factors, continuous,
               observer.dataset.factor_names)


def images(dataset: FactorDataset, num_train: int, num_test: int, continuous: bool) -> int:
    """Factor rows asked for: the training and the test points."""
    return num_train + num_test


METRIC = Metric("sap", "SAP: gap between the two best single-code linear SVMs per factor",
                sap, score, images,
                source='Kumar et al., ICLR 2018 (DIP-VAE)',
                cost='a linear SVM per (code, factor) pair')


@disentangle.hookimpl
def disentangle_register_metrics() -> list[Metric]:
    return [METRIC]
