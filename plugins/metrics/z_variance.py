"""Z-min and Z-max variance, the voting scores of the metrics review of Zaidi et al. (2020).

Both give each code a factor by majority vote, as the FactorVAE score does, and report the
vote classifier's evaluation accuracy rescaled from chance, ``(acc - 1/K) / (1 - 1/K)``
(0 at chance, 1 best; it can go below 0). Codes are divided by their global variance
(from the evaluation's shared uniform draw of ``num_variance_estimate`` points, ddof 1);
codes whose global standard deviation is below ``threshold`` are left out.

* ``z_min``: a vote is a batch in which one random factor is held at one value and the
  others vary; it votes for (that factor, the code of least normalised variance). This is
  the FactorVAE score of Kim and Mnih (2018) under the review's settings: batches of 200,
  800 training and 800 evaluation votes, rescaled accuracy (``factor_vae`` keeps the
  reference protocol's 64 / 10,000 / 5,000 and raw accuracy).
* ``z_max``: the reverse (Kim et al. 2019): every factor but one is held and the one left
  varies; the batch votes for (that factor, the code of *most* normalised variance).

The review's implementation draws votes from a fixed table of images; the draws here come
from the dataset's factor grid, as every other sampler's.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import disentangle
from disentangle.datasets import FactorDataset
from disentangle.metrics import (
    Metric,
    Observer,
    batch_codes,
    fixed_factor_batches,
    varied_factor_batches,
)
from disentangle_plugins.metrics.factor_vae import vote


def _scores(name: str, largest: bool, global_codes: np.ndarray, train_codes: np.ndarray,
            train_factor: np.ndarray, eval_codes: np.ndarray, eval_factor: np.ndarray,
            num_factors: int, threshold: float) -> dict[str, float]:
    """The vote's accuracies rescaled from chance, and the active codes' count."""
    accuracy, train_accuracy, active = vote(global_codes, train_codes, train_factor,
                                            eval_codes, eval_factor, num_factors, threshold,
                                            largest)
    if not active:
        return {name: 0.0, f"{name}.train_accuracy": 0.0, f"{name}.active_codes": 0.0}
    chance = 1.0 / num_factors
    return {name: (accuracy - chance) / (1 - chance),
            f"{name}.train_accuracy": (train_accuracy - chance) / (1 - chance),
            f"{name}.active_codes": float(active)}


def z_min(global_codes: np.ndarray, train_codes: np.ndarray, train_fixed: np.ndarray,
          eval_codes: np.ndarray, eval_fixed: np.ndarray, num_factors: int,
          threshold: float = 0.05) -> dict[str, float]:
    """Z-min variance from the variance sample's codes ``[N, d]`` and vote batches' codes
    ``[B, L, d]`` whose held factor is ``train_fixed`` / ``eval_fixed`` ``[B]``: ``"z_min"``,
    ``"z_min.train_accuracy"`` (both rescaled) and ``"z_min.active_codes"``."""
    return _scores("z_min", False, global_codes, train_codes, train_fixed, eval_codes,
                   eval_fixed, num_factors, threshold)


def z_max(global_codes: np.ndarray, train_codes: np.ndarray, train_varied: np.ndarray,
          eval_codes: np.ndarray, eval_varied: np.ndarray, num_factors: int,
          threshold: float = 0.05) -> dict[str, float]:
    """Z-max variance, as :func:`z_min` but each batch varies only factor
    ``train_varied`` / ``eval_varied`` and votes for its code of most variance."""
    return _scores("z_max", True, global_codes, train_codes, train_varied, eval_codes,
                   eval_varied, num_factors, threshold)


def _sampler(core: Callable[..., dict[str, float]], batches: Callable[..., tuple]
             ) -> Callable[..., dict[str, float]]:
    def score(observer: Observer, rng: np.random.Generator, batch_size: int = 200,
              num_train: int = 800, num_eval: int = 800, num_variance_estimate: int = 10_000,
              threshold: float = 0.05) -> dict[str, float]:
        """The shared variance sample, then ``num_train`` and ``num_eval`` vote batches."""
        dataset = observer.dataset
        global_codes, _ = observer.shared_sample(num_variance_estimate)
        train_factors, train_label = batches(dataset, num_train, batch_size, rng)
        eval_factors, eval_label = batches(dataset, num_eval, batch_size, rng)
        return core(global_codes.codes(), batch_codes(observer, train_factors, rng),
                    train_label, batch_codes(observer, eval_factors, rng), eval_label,
                    dataset.num_factors, threshold)
    return score


def images(dataset: FactorDataset, batch_size: int, num_train: int, num_eval: int,
           num_variance_estimate: int, threshold: float) -> int:
    """Factor rows asked for: the variance sample plus one batch per vote."""
    return num_variance_estimate + (num_train + num_eval) * batch_size


METRICS = [
    Metric("z_min", "Z-min variance: FactorVAE-style vote on the least-varying code, one "
                    "factor held (batches of 200, 800/800 votes, accuracy over chance)",
           z_min, _sampler(z_min, fixed_factor_batches), images,
           source='Zaidi et al., 2020 (metrics review); Kim and Mnih, ICML 2018',
           cost='a majority vote; cheap once encoded'),
    Metric("z_max", "Z-max variance: vote on the most-varying code, all factors but one "
                    "held (batches of 200, 800/800 votes, accuracy over chance)",
           z_max, _sampler(z_max, varied_factor_batches), images,
           source='Zaidi et al., 2020 (metrics review); Kim et al., 2019',
           cost='a majority vote; cheap once encoded'),
]


@disentangle.hookimpl
def disentangle_register_metrics() -> list[Metric]:
    return METRICS
