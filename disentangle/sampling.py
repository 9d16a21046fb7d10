"""Training data drawn with correlated factors (Träuble et al. 2021; Roth et al., ICLR 2023).

Real data rarely varies its factors independently; these papers train on data in which
pairs of factors are correlated and score on the uncorrelated grid, to see whether a model
still separates them. A pair ``(a, b)`` of strength ``sigma`` is drawn from

    p(i, j)  proportional to  exp(-(x_i - y_j)^2 / (2 sigma^2)),

where ``x_i = i / (n_a - 1)`` and ``y_j = j / (n_b - 1)`` are the factors' values scaled to
[0, 1]: the smaller ``sigma``, the more strongly the two factors move together (along the
diagonal of their grid); every other factor stays uniform and independent. A run asks for
it with ``--data-option correlate=A:B:SIGMA`` (repeatable, one factor in one pair at most).
Only the training batches are drawn this way: every evaluation still samples the uniform
grid, and the run records the options and the measured correlation of each pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from disentangle.datasets import FactorDataset
from disentangle.errors import UsageError

#: draws used to measure the correlation a sampler gives (recorded with the run)
MEASURED_DRAWS = 100_000


@dataclass(frozen=True)
class Correlation:
    """Factors ``first`` and ``second`` (column numbers) drawn together with ``sigma``."""

    first: int
    second: int
    sigma: float


def pair_distribution(size_a: int, size_b: int, sigma: float) -> np.ndarray:
    """``p(i, j)`` ``[size_a, size_b]`` of a correlated pair (see the module); sums to 1."""
    x = np.arange(size_a) / max(size_a - 1, 1)
    y = np.arange(size_b) / max(size_b - 1, 1)
    weights = np.exp(-(x[:, None] - y[None, :]) ** 2 / (2 * sigma ** 2))
    return weights / weights.sum()


def parse_options(options: Sequence[str], dataset: FactorDataset) -> list[Correlation]:
    """The correlations that ``--data-option`` values ask for on ``dataset``; a UsageError
    says what is wrong with one."""
    correlations: list[Correlation] = []
    used: set[int] = set()
    for option in options:
        key, _, value = option.partition("=")
        if key != "correlate":
            raise UsageError(f"unknown --data-option {key!r} (known: correlate=A:B:SIGMA)")
        parts = value.split(":")
        if len(parts) != 3:
            raise UsageError(f"--data-option {option!r}: expected correlate=A:B:SIGMA, two "
                             f"factors of {dataset.name} and a strength")
        names = dataset.factor_names
        unknown = [p for p in parts[:2] if p not in names]
        if unknown:
            raise UsageError(f"--data-option {option!r}: {dataset.name} has no factor "
                             f"{unknown[0]!r} (factors: {', '.join(names)})")
        first, second = names.index(parts[0]), names.index(parts[1])
        try:
            sigma = float(parts[2])
        except ValueError:
            sigma = -1.0
        if not sigma > 0 or not np.isfinite(sigma):
            raise UsageError(f"--data-option {option!r}: the strength must be a positive "
                             f"number, not {parts[2]!r}")
        if first == second or {first, second} & used:
            raise UsageError(f"--data-option {option!r}: each factor may be in one "
                             "correlated pair only")
        used |= {first, second}
        correlations.append(Correlation(first, second, sigma))
    return correlations


class CorrelatedSampler:
    """Training batches of ``dataset`` with the factor pairs of ``correlations`` drawn
    together (:func:`pair_distribution`); the rest of the factors uniform."""

    def __init__(self, dataset: FactorDataset, correlations: Sequence[Correlation]):
        self.dataset = dataset
        self.correlations = list(correlations)
        sizes = dataset.factor_sizes
        self.tables = [pair_distribution(sizes[c.first], sizes[c.second], c.sigma).ravel()
                       for c in self.correlations]

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        factors = self.dataset.sample_factors(n, rng)
        for c, table in zip(self.correlations, self.tables):
            cells = rng.choice(len(table), size=n, p=table)
            factors[:, c.first], factors[:, c.second] = np.divmod(
                cells, self.dataset.factor_sizes[c.second])
        return factors

    def sample(self, n: int, rng: np.random.Generator, device: torch.device | str = "cpu"
               ) -> tuple[torch.Tensor, np.ndarray]:
        """A training batch: ``(images on device, factors)``, as ``dataset.sample``."""
        factors = self.sample_factors(n, rng)
        return self.dataset.images_on(torch.device(device), factors, rng), factors

    def measured(self, seed: int = 0) -> dict[str, float]:
        """The Pearson correlation of each pair's factor values over
        :data:`MEASURED_DRAWS` draws, by ``correlation.<a>.<b>``."""
        factors = self.sample_factors(MEASURED_DRAWS, np.random.default_rng(seed))
        names = self.dataset.factor_names
        return {f"correlation.{names[c.first]}.{names[c.second]}":
                float(np.corrcoef(factors[:, c.first], factors[:, c.second])[0, 1])
                for c in self.correlations}
