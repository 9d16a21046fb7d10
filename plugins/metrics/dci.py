"""DCI disentanglement, completeness and informativeness (Eastwood and Williams 2018).

As in the reference protocol: one gradient-boosted tree classifier per factor predicts the
factor from all codes; ``R[i, j]`` is code ``i``'s feature importance for factor ``j``.
Disentanglement is ``sum_i rho_i (1 - H_K(R[i, :]))`` with ``rho_i`` code ``i``'s share of
all importance and entropies in base K (the number of factors); completeness is the same
with codes and factors swapped (base: the number of codes); informativeness is the
classifiers' mean accuracy on the training and the test points.

Three metrics share this definition and differ in the classifier:

* ``dci``: the reference's classifier, scikit-learn's ``GradientBoostingClassifier()`` at
  its defaults (100 stages of depth-3 trees, learning rate 0.1), grown by
  :mod:`disentangle_plugins.metrics.boosting`: the same trees, with the work of sorting and
  split search shared between all trees of a stage.
* ``dci_sklearn``: the same classifier fitted by scikit-learn itself, kept as the reference
  ``dci`` is checked against. The two differ only where scikit-learn breaks ties between
  equally good splits at random.
* ``dci_fast``: the same boosting schedule with scikit-learn's histogram trees (codes cut
  into 255 quantile bins), importance being each code's total split gain. An
  approximation; its deviation from ``dci`` is measured by ``benchmarks/metric_suite.py``.

Speeds and agreements are in ``benchmarks/results/dci_exact.txt`` and
``benchmarks/results/metric_suite.txt``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial

import numpy as np
from joblib import Parallel, delayed
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

import disentangle
from disentangle.datasets import FactorDataset
from disentangle.errors import NotApplicable
from disentangle.metrics import Metric, Observer, normalized_entropy, sample_codes
from disentangle_plugins.metrics import boosting

#: importance added to every entry before the entropies, as the reference does, so a code
#: (or factor) without any importance counts as spread evenly rather than undefined
_EPSILON = 1e-11


def disentanglement(importance: np.ndarray) -> float:
    """Importance-weighted mean over codes of ``1 - H_K(R[i, :])`` for ``R`` ``[codes, K]``."""
    per_code = 1.0 - normalized_entropy(importance + _EPSILON, axis=1)
    weights = importance.sum(axis=1) if importance.sum() > 0 else np.ones(len(importance))
    return float((per_code * weights).sum() / weights.sum())


def completeness(importance: np.ndarray) -> float:
    """Importance-weighted mean over factors of ``1 - H_d(R[:, j])`` for ``R`` ``[d, K]``."""
    return disentanglement(importance.T)


def boosted_importance(train_codes: np.ndarray, train_factors: np.ndarray,
                       test_codes: np.ndarray, test_factors: np.ndarray,
                       fit: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, object]],
                       jobs: int = 0) -> tuple[np.ndarray, float, float]:
    """Importance matrix ``[d, K]`` and mean train / test accuracy of one classifier per
    factor; ``fit(codes, labels) -> (importances [d], fitted classifier)``.

    The K fits are independent, so they run in ``jobs`` worker processes (0: one per CPU
    core, never more than K), factors with the most values first since theirs are the
    longest fits. Each fit is seeded on its own: the result does not depend on ``jobs``.
    """
    values = [len(np.unique(column)) for column in train_factors.T]
    for j, count in enumerate(values):
        if count < 2:
            raise NotApplicable(f"factor {j} does not vary in the training sample")
    order = sorted(range(len(values)), key=lambda j: -values[j])
    workers = min(len(order), jobs or os.cpu_count() or 1)
    fitted = Parallel(n_jobs=workers)(
        delayed(_fit_and_score)(fit, train_codes, train_factors[:, j], test_codes,
                                test_factors[:, j]) for j in order)
    importance = np.zeros((train_codes.shape[1], train_factors.shape[1]))
    train_accuracy, test_accuracy = np.zeros(len(order)), np.zeros(len(order))
    for j, (weights, train_score, test_score) in zip(order, fitted):
        importance[:, j] = weights
        train_accuracy[j], test_accuracy[j] = train_score, test_score
    return importance, float(train_accuracy.mean()), float(test_accuracy.mean())


def _fit_and_score(fit: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, object]],
                   train_codes: np.ndarray, train_labels: np.ndarray, test_codes: np.ndarray,
                   test_labels: np.ndarray) -> tuple[np.ndarray, float, float]:
    """One factor's classifier: its importances and its train and test accuracy.

    On one OpenMP thread: on a shared CPU scikit-learn's thread team makes these small fits
    and predictions slower, not faster (parallelism comes from the factors instead).
    """
    with threadpool_limits(1, "openmp"):
        importance, classifier = fit(train_codes, train_labels)
        return (importance, classifier.score(train_codes, train_labels),
                classifier.score(test_codes, test_labels))


def scores(name: str, importance: np.ndarray, train_accuracy: float,
           test_accuracy: float) -> dict[str, float]:
    """The named scores of one DCI evaluation (``name`` is the headline: disentanglement)."""
    return {name: disentanglement(importance),
            f"{name}.completeness": completeness(importance),
            f"{name}.informativeness_train": train_accuracy,
            f"{name}.informativeness_test": test_accuracy}


def _exact_fit(codes: np.ndarray, labels: np.ndarray, seed: int) -> tuple[np.ndarray, object]:
    trees = boosting.fit(codes, labels, seed=seed)
    return trees.importances, trees


def _sklearn_fit(codes: np.ndarray, labels: np.ndarray, seed: int
                 ) -> tuple[np.ndarray, object]:
    classifier = GradientBoostingClassifier(
        n_estimators=100, learning_rate=0.1, max_depth=3, random_state=seed)
    classifier.fit(codes, labels)
    return np.abs(classifier.feature_importances_), classifier


def _histogram_fit(codes: np.ndarray, labels: np.ndarray, seed: int
                   ) -> tuple[np.ndarray, object]:
    classifier = HistGradientBoostingClassifier(
        max_iter=100, learning_rate=0.1, max_depth=3, max_leaf_nodes=None,
        min_samples_leaf=1, l2_regularization=0.0, max_bins=255, early_stopping=False,
        random_state=seed)
    classifier.fit(codes, labels)
    gains = np.zeros(codes.shape[1])
    for stage in classifier._predictors:  # one tree per class and boosting stage
        for tree in stage:
            split = ~tree.nodes["is_leaf"].astype(bool)
            np.add.at(gains, tree.nodes["feature_idx"][split], tree.nodes["gain"][split])
    total = gains.sum()
    return (gains / total if total > 0 else gains), classifier


def dci(train_codes: np.ndarray, train_factors: np.ndarray, test_codes: np.ndarray,
        test_factors: np.ndarray, seed: int = 0, jobs: int = 0) -> dict[str, float]:
    """DCI with the reference's gradient boosting, grown with shared work.

    Returns ``"dci"`` (disentanglement), ``"dci.completeness"``,
    ``"dci.informativeness_train"`` and ``"dci.informativeness_test"`` (accuracies).
    The per-factor fits run in ``jobs`` processes (0: one per CPU core).
    """
    return scores("dci", *boosted_importance(train_codes, train_factors, test_codes,
                                             test_factors, partial(_exact_fit, seed=seed),
                                             jobs))


def dci_sklearn(train_codes: np.ndarray, train_factors: np.ndarray, test_codes: np.ndarray,
                test_factors: np.ndarray, seed: int = 0, jobs: int = 0) -> dict[str, float]:
    """DCI with scikit-learn fitting the reference's classifiers itself (the slow
    reference ``dci`` is checked against); keys ``dci_sklearn...``."""
    return scores("dci_sklearn", *boosted_importance(train_codes, train_factors, test_codes,
                                                     test_factors,
                                                     partial(_sklearn_fit, seed=seed), jobs))


def dci_fast(train_codes: np.ndarray, train_factors: np.ndarray, test_codes: np.ndarray,
             test_factors: np.ndarray, seed: int = 0, jobs: int = 0) -> dict[str, float]:
    """DCI with histogram gradient boosting (approximate, fast); keys ``dci_fast...``."""
    return scores("dci_fast", *boosted_importance(train_codes, train_factors, test_codes,
                                                  test_factors,
                                                  partial(_histogram_fit, seed=seed), jobs))


def _sampler(core: Callable[..., dict[str, float]]) -> Callable[..., dict[str, float]]:
    def score(observer: Observer, rng: np.random.Generator, num_train: int = 10_000,
              num_test: int = 5_000, jobs: int = 0) -> dict[str, float]:
        """``num_train`` then ``num_test`` uniform draws; the classifiers' seed from ``rng``;
        the per-factor fits in ``jobs`` processes (0: one per CPU core)."""
        train_codes, train_factors = sample_codes(observer, num_train, rng)
        test_codes, test_factors = sample_codes(observer, num_test, rng)
        return core(train_codes, train_factors, test_codes, test_factors,
                    int(rng.integers(2**31)), jobs)
    return score


def images(dataset: FactorDataset, num_train: int, num_test: int, jobs: int) -> int:
    """Factor rows asked for: the training and the test points."""
    return num_train + num_test


METRICS = [
    Metric("dci", "DCI disentanglement / completeness / informativeness, the reference's "
                  "gradient boosting grown with shared work", dci, _sampler(dci), images,
           source='Eastwood and Williams, ICLR 2018',
           cost='100 x n_values depth-3 trees per factor (one tree per stage for two values)'),
    Metric("dci_sklearn", "dci with scikit-learn fitting the classifiers (the slow "
                          "reference dci is checked against)",
           dci_sklearn, _sampler(dci_sklearn), images,
           source='Eastwood and Williams, ICLR 2018',
           cost='as dci, each tree sorting its samples at every node'),
    Metric("dci_fast", "DCI with histogram gradient boosting: fast approximation of dci",
           dci_fast, _sampler(dci_fast), images,
           source='Eastwood and Williams, ICLR 2018',
           cost='100 x n_values histogram trees per factor'),
]


@disentangle.hookimpl
def disentangle_register_metrics() -> list[Metric]:
    return METRICS
