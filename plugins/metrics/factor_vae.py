"""FactorVAE score (Kim and Mnih 2018), as defined by the reference protocol.

Codes are divided by their global standard deviation (from ``num_variance_estimate``
points, ddof 1); codes with a global standard deviation below ``threshold`` are pruned.
A *vote* is a batch of ``batch_size`` points sharing the value of one random factor: it
votes for (that factor, the active code of least normalised variance in the batch). Each
code is assigned the factor it got most training votes with; the score is the share of
evaluation votes this majority-vote classifier gets right.
"""

from __future__ import annotations

import numpy as np

import disentangle
from disentangle.datasets import FactorDataset
from disentangle.metrics import Metric, Observer, batch_codes, fixed_factor_batches, sample_codes


def votes(codes: np.ndarray, labels: np.ndarray, global_variance: np.ndarray,
          active: np.ndarray, num_factors: int, largest: bool = False) -> np.ndarray:
    """Vote counts ``[num_factors, d]``: batch ``b`` (``codes[b]`` ``[L, d]``, factor
    ``labels[b]``) votes for its active code of least (``largest``: most) variance over
    ``global_variance``."""
    local = codes.var(axis=1, ddof=1)  # [B, d]
    ratio = local / np.where(active, global_variance, 1.0)
    if largest:
        chosen = np.where(active, ratio, -np.inf).argmax(axis=1)
    else:
        chosen = np.where(active, ratio, np.inf).argmin(axis=1)
    counts = np.zeros((num_factors, codes.shape[2]), dtype=np.int64)
    np.add.at(counts, (labels, chosen), 1)
    return counts


def majority_vote(train: np.ndarray, evaluation: np.ndarray) -> tuple[float, float]:
    """Evaluation and training accuracy of the classifier that maps each code to the factor
    it got most training votes with, from vote counts ``[K, d]``."""
    classifier = train.argmax(axis=0)  # the factor each code stands for
    columns = np.arange(train.shape[1])
    return (float(evaluation[classifier, columns].sum() / evaluation.sum()),
            float(train[classifier, columns].sum() / train.sum()))


def vote(global_codes: np.ndarray, train_codes: np.ndarray, train_labels: np.ndarray,
         eval_codes: np.ndarray, eval_labels: np.ndarray, num_factors: int, threshold: float,
         largest: bool = False) -> tuple[float, float, int]:
    """Evaluation and training accuracy of the majority vote, and the active codes' count,
    from the variance sample's codes ``[N, d]`` and vote batches' codes ``[B, L, d]``
    labelled with their factors ``[B]`` (both accuracies 0 with no active code)."""
    global_variance = np.asarray(global_codes, dtype=np.float64).var(axis=0, ddof=1)
    active = np.sqrt(global_variance) >= threshold
    if not active.any():
        return 0.0, 0.0, 0
    accuracy, train_accuracy = majority_vote(
        votes(train_codes, train_labels, global_variance, active, num_factors, largest),
        votes(eval_codes, eval_labels, global_variance, active, num_factors, largest))
    return accuracy, train_accuracy, int(active.sum())


def factor_vae(global_codes: np.ndarray, train_codes: np.ndarray, train_fixed: np.ndarray,
               eval_codes: np.ndarray, eval_fixed: np.ndarray, num_factors: int,
               threshold: float = 0.05) -> dict[str, float]:
    """FactorVAE score from codes of the variance sample ``[N, d]`` and of vote batches
    ``[B, L, d]`` whose held factors are ``train_fixed`` / ``eval_fixed`` ``[B]``.

    Returns ``"factor_vae"`` (evaluation accuracy), ``"factor_vae.train_accuracy"`` and
    ``"factor_vae.active_codes"`` (codes kept after pruning; the reference code reports
    the total number of codes here by mistake). With no active code both accuracies are 0,
    as in the reference.
    """
    accuracy, train_accuracy, active = vote(global_codes, train_codes, train_fixed,
                                            eval_codes, eval_fixed, num_factors, threshold)
    return {"factor_vae": accuracy, "factor_vae.train_accuracy": train_accuracy,
            "factor_vae.active_codes": float(active)}


def score(observer: Observer, rng: np.random.Generator, batch_size: int = 64,
          num_train: int = 10_000, num_eval: int = 5_000, num_variance_estimate: int = 10_000,
          threshold: float = 0.05) -> dict[str, float]:
    """The reference protocol's draws: the variance sample, then train and eval votes."""
    dataset = observer.dataset
    global_codes, _ = sample_codes(observer, num_variance_estimate, rng)
    train_factors, train_fixed = fixed_factor_batches(dataset, num_train, batch_size, rng)
    eval_factors, eval_fixed = fixed_factor_batches(dataset, num_eval, batch_size, rng)
    return factor_vae(global_codes, batch_codes(observer, train_factors, rng), train_fixed,
                      batch_codes(observer, eval_factors, rng), eval_fixed,
                      dataset.num_factors, threshold)


def images(dataset: FactorDataset, batch_size: int, num_train: int, num_eval: int,
           num_variance_estimate: int, threshold: float) -> int:
    """Factor rows asked for: the variance sample plus one batch per vote."""
    return num_variance_estimate + (num_train + num_eval) * batch_size


METRIC = Metric("factor_vae", "FactorVAE score: majority vote on the least-varying code "
                              "(batches of 64, 10k train / 5k eval votes)",
                factor_vae, score, images,
                source='Kim and Mnih, ICML 2018 (FactorVAE)',
                cost='a majority vote; cheap once encoded')


@disentangle.hookimpl
def disentangle_register_metrics() -> list[Metric]:
    return [METRIC]
