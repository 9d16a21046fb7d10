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

``--data-option holdout=A:B:FRACTION`` instead leaves a region of combinations out of
training: those where factor ``A`` lies in the top ``FRACTION`` of its values and ``B``
in the top ``FRACTION`` of its values (Montero et al. 2021's *recombination to range*:
each value is seen in training, their combination is not). Every evaluation then also
scores the run's metrics on factor rows drawn from that region alone, logged as
``eval/heldout/<score>`` beside the uniform grid's ``eval/<score>``.
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


@dataclass(frozen=True)
class HeldOut:
    """The combinations with factor ``first`` in its top ``first_values`` values and factor
    ``second`` in its top ``second_values`` values."""

    first: int
    second: int
    first_values: int
    second_values: int

    def contains(self, factors: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
        """Which factor rows ``[n, K]`` lie in the region: bool ``[n]``."""
        return ((factors[:, self.first] >= sizes[self.first] - self.first_values)
                & (factors[:, self.second] >= sizes[self.second] - self.second_values))

    def draw(self, factors: np.ndarray, sizes: Sequence[int], rng: np.random.Generator
             ) -> np.ndarray:
        """``factors`` moved into the region: the pair redrawn uniformly inside it."""
        out = factors.copy()
        for column, count in ((self.first, self.first_values),
                              (self.second, self.second_values)):
            out[:, column] = rng.integers(sizes[column] - count, sizes[column], len(out))
        return out


def pair_distribution(size_a: int, size_b: int, sigma: float) -> np.ndarray:
    """``p(i, j)`` ``[size_a, size_b]`` of a correlated pair (see the module); sums to 1."""
    x = np.arange(size_a) / max(size_a - 1, 1)
    y = np.arange(size_b) / max(size_b - 1, 1)
    weights = np.exp(-(x[:, None] - y[None, :]) ** 2 / (2 * sigma ** 2))
    return weights / weights.sum()


def _factor_pair(option: str, parts: list[str], dataset: FactorDataset) -> tuple[int, int]:
    names = dataset.factor_names
    unknown = [p for p in parts[:2] if p not in names]
    if unknown:
        raise UsageError(f"--data-option {option!r}: {dataset.name} has no factor "
                         f"{unknown[0]!r} (factors: {', '.join(names)})")
    return names.index(parts[0]), names.index(parts[1])


def _number(option: str, text: str, what: str, high: float) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < high:
        raise UsageError(f"--data-option {option!r}: the {what} must be a number in "
                         f"(0, {high:g}), not {text!r}")
    return value


def parse_options(options: Sequence[str], dataset: FactorDataset
                  ) -> tuple[list[Correlation], HeldOut | None]:
    """The correlations and the held-out region that ``--data-option`` values ask for on
    ``dataset``; a UsageError says what is wrong with one."""
    correlations: list[Correlation] = []
    held: HeldOut | None = None
    used: set[int] = set()
    for option in options:
        key, _, value = option.partition("=")
        if key not in ("correlate", "holdout"):
            raise UsageError(f"unknown --data-option {key!r} (known: correlate=A:B:SIGMA, "
                             "holdout=A:B:FRACTION)")
        parts = value.split(":")
        if len(parts) != 3:
            shape = "correlate=A:B:SIGMA" if key == "correlate" else "holdout=A:B:FRACTION"
            raise UsageError(f"--data-option {option!r}: expected {shape}, two factors of "
                             f"{dataset.name} and a number")
        first, second = _factor_pair(option, parts, dataset)
        if first == second or {first, second} & used:
            raise UsageError(f"--data-option {option!r}: each factor may be in one option "
                             "only")
        used |= {first, second}
        if key == "correlate":
            sigma = _number(option, parts[2], "strength", float("inf"))
            correlations.append(Correlation(first, second, sigma))
            continue
        if held is not None:
            raise UsageError(f"--data-option {option!r}: one held-out region per run")
        fraction = _number(option, parts[2], "fraction", 1.0)
        sizes = dataset.factor_sizes
        counts = [int(round(fraction * sizes[k])) for k in (first, second)]
        if min(counts) < 1 or any(c >= sizes[k] for c, k in zip(counts, (first, second))):
            raise UsageError(f"--data-option {option!r}: {fraction:g} of the values must "
                             "leave at least one value out and one in for each factor")
        held = HeldOut(first, second, *counts)
    return correlations, held


class TrainingSampler:
    """Training batches of ``dataset`` with the factor pairs of ``correlations`` drawn
    together (:func:`pair_distribution`), the rest of the factors uniform, and no row in
    the ``held_out`` region (redrawn until none is)."""

    def __init__(self, dataset: FactorDataset, correlations: Sequence[Correlation],
                 held_out: HeldOut | None = None):
        self.dataset = dataset
        self.correlations = list(correlations)
        self.held_out = held_out
        sizes = dataset.factor_sizes
        self.tables = [pair_distribution(sizes[c.first], sizes[c.second], c.sigma).ravel()
                       for c in self.correlations]

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        factors = self.dataset.sample_factors(n, rng)
        for c, table in zip(self.correlations, self.tables):
            cells = rng.choice(len(table), size=n, p=table)
            factors[:, c.first], factors[:, c.second] = np.divmod(
                cells, self.dataset.factor_sizes[c.second])
        return factors

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        factors = self._draw(n, rng)
        if self.held_out is not None:
            inside = self.held_out.contains(factors, self.dataset.factor_sizes)
            while inside.any():
                factors[inside] = self._draw(int(inside.sum()), rng)
                inside = self.held_out.contains(factors, self.dataset.factor_sizes)
        return factors

    def sample(self, n: int, rng: np.random.Generator, device: torch.device | str = "cpu"
               ) -> tuple[torch.Tensor, np.ndarray]:
        """A training batch: ``(images on device, factors)``, as ``dataset.sample``."""
        factors = self.sample_factors(n, rng)
        return self.dataset.images_on(torch.device(device), factors, rng), factors

    def measured(self, seed: int = 0) -> dict[str, float]:
        """What the training data is, measured over :data:`MEASURED_DRAWS` draws: the
        Pearson correlation of each pair (``correlation.<a>.<b>``) and the share of the
        grid held out (``held_out_share``)."""
        factors = self.sample_factors(MEASURED_DRAWS, np.random.default_rng(seed))
        names = self.dataset.factor_names
        out = {f"correlation.{names[c.first]}.{names[c.second]}":
               float(np.corrcoef(factors[:, c.first], factors[:, c.second])[0, 1])
               for c in self.correlations}
        if self.held_out is not None:
            sizes = self.dataset.factor_sizes
            h = self.held_out
            out["held_out_share"] = (h.first_values * h.second_values
                                     / (sizes[h.first] * sizes[h.second]))
        return out


class HeldOutView:
    """``dataset`` as the metrics see it, with factor rows drawn from the held-out region
    only (every other attribute is the dataset's own)."""

    def __init__(self, dataset: FactorDataset, held_out: HeldOut):
        self.dataset = dataset
        self.held_out = held_out

    def __getattr__(self, name: str) -> object:
        return getattr(self.dataset, name)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.held_out.draw(self.dataset.sample_factors(n, rng),
                                  self.dataset.factor_sizes, rng)
