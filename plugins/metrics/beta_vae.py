"""BetaVAE score (Higgins et al. 2017), as defined by the reference protocol.

A training point is a batch of ``batch_size`` pairs of factor rows that agree on one
random factor (the others drawn independently); its feature is the mean absolute
difference of the pair's codes, its label the shared factor. A logistic regression is
fitted on ``num_train`` such points and scored on ``num_eval`` fresh ones.

The logistic regression is scikit-learn's with its current defaults written out (L2,
C = 1, lbfgs, multinomial, 100 iterations), so a change of library defaults cannot move
the score; the reference ran the defaults of its day (liblinear, one-vs-rest).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

import disentangle
from disentangle.datasets import FactorDataset
from disentangle.metrics import Metric, Observer, batch_codes


def pair_features(codes_a: np.ndarray, codes_b: np.ndarray) -> np.ndarray:
    """Mean absolute code difference over each batch of pairs: ``[B, L, d]`` x 2 -> ``[B, d]``."""
    return np.abs(np.asarray(codes_a) - np.asarray(codes_b)).mean(axis=1)


def beta_vae(train_features: np.ndarray, train_labels: np.ndarray,
             eval_features: np.ndarray, eval_labels: np.ndarray) -> dict[str, float]:
    """Accuracy of a logistic regression predicting the shared factor from pair features.

    Returns ``"beta_vae"`` (evaluation accuracy) and ``"beta_vae.train_accuracy"``.
    """
    classifier = LogisticRegression(C=1.0, solver="lbfgs", max_iter=100)
    with warnings.catch_warnings():
        # the protocol fixes 100 iterations; not converging is part of its definition
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier.fit(train_features, train_labels)
    return {"beta_vae": float(classifier.score(eval_features, eval_labels)),
            "beta_vae.train_accuracy": float(classifier.score(train_features, train_labels))}


def pair_batches(dataset: FactorDataset, num_batches: int, batch_size: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Factor rows ``[B, L, K]`` twice, agreeing on one factor per batch, and that factor."""
    fixed = rng.integers(0, dataset.num_factors, num_batches)
    shape = (num_batches, batch_size, dataset.num_factors)
    first = dataset.sample_factors(num_batches * batch_size, rng).reshape(shape)
    second = dataset.sample_factors(num_batches * batch_size, rng).reshape(shape)
    batches = np.arange(num_batches)
    second[batches, :, fixed] = first[batches, :, fixed]
    return first, second, fixed


def features(observer: Observer, num_batches: int, batch_size: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``num_batches`` pair features and their labels, drawn from the observer's dataset."""
    first, second, fixed = pair_batches(observer.dataset, num_batches, batch_size, rng)
    both = batch_codes(observer, np.concatenate([first, second]), rng)
    return pair_features(both[:num_batches], both[num_batches:]), fixed


def score(observer: Observer, rng: np.random.Generator, batch_size: int = 64,
          num_train: int = 10_000, num_eval: int = 5_000) -> dict[str, float]:
    """The reference protocol's draws: ``num_train`` then ``num_eval`` batches of pairs."""
    train_features, train_labels = features(observer, num_train, batch_size, rng)
    eval_features, eval_labels = features(observer, num_eval, batch_size, rng)
    return beta_vae(train_features, train_labels, eval_features, eval_labels)


def images(dataset: FactorDataset, batch_size: int, num_train: int, num_eval: int) -> int:
    """Factor rows asked for: two per pair."""
    return 2 * batch_size * (num_train + num_eval)


METRIC = Metric("beta_vae", "BetaVAE score: logistic regression on pair differences "
                            "(batches of 64, 10k train / 5k eval points)",
                beta_vae, score, images,
                source='Higgins et al., ICLR 2017 (beta-VAE)',
                cost='a logistic regression on 10,000 + 5,000 averaged pair differences')


@disentangle.hookimpl
def disentangle_register_metrics() -> list[Metric]:
    return [METRIC]
