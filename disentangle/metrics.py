"""The metric protocol, and every registered metric's array-level core by name.

A metric has two parts, kept apart on purpose:

* ``core(...)``: a pure function of arrays (codes ``[N, d]``, factors ``[N, K]`` int, ...)
  returning named scores. Tests call it on representations with known answers.
* ``score(observer, rng, **params)``: the sampling protocol. It draws factor combinations
  from ``observer.dataset``, asks ``observer`` for their codes, and calls ``core``.

``disentangle.metrics.mig(codes, factors)`` is the registered ``mig`` metric's core, and so
on for every metric plugin, third-party ones included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from disentangle.evaluation import Observer


@dataclass(frozen=True)
class Metric:
    """A registered metric: its name, a one-line summary, its core and its sampler."""

    name: str
    summary: str
    core: Callable[..., dict[str, float]]
    score: Callable[..., dict[str, float]]

    def __call__(self, observer: Observer, rng: np.random.Generator,
                 **params: Any) -> dict[str, float]:
        return self.score(observer, rng, **params)


def __getattr__(name: str) -> Callable[..., dict[str, float]]:
    if name.startswith("__"):
        raise AttributeError(name)
    from disentangle.registry import get_registry

    entry = get_registry().entries["metric"].get(name)
    if entry is None:
        raise AttributeError(f"no metric named {name!r} is registered")
    return entry.obj.core
