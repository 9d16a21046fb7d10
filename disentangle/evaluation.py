"""Scoring a model: factor rows -> images -> codes -> metric scores."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

from disentangle.datasets import FactorDataset
from disentangle.errors import NotApplicable
from disentangle.models import Model, Representation
from disentangle.registry import Registry


class Observer:
    """Gives metrics the codes of the images at given factors, encoded in large batches.

    It counts the images it encodes, so benchmarks can report the encoder cost of a metric.
    """

    def __init__(self, model: Model, dataset: FactorDataset, batch_size: int = 512):
        self.model = model
        self.dataset = dataset
        self.batch_size = batch_size
        self.images_encoded = 0

    @torch.no_grad()
    def __call__(self, factors: np.ndarray, rng: np.random.Generator) -> Representation:
        factors = self.dataset.check_factors(factors)
        parts = []
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(factors), self.batch_size):
                chunk = factors[start:start + self.batch_size]
                images = self.dataset.images(chunk, rng).to(self.model.device)
                parts.append(self.model.encode(images))
        finally:
            self.model.train(was_training)
        self.images_encoded += len(factors)
        return Representation.concatenate(parts)


@dataclass
class Evaluation:
    """The outcome of one evaluation: scores, metrics skipped (with why), and timing."""

    scores: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    images_encoded: int = 0


def evaluate(model: Model, dataset: FactorDataset, metric_names: Iterable[str],
             registry: Registry, seed: int) -> Evaluation:
    """Score ``model`` with each named metric; the draws depend on ``seed`` alone."""
    result = Evaluation()
    observer = Observer(model, dataset)
    for index, name in enumerate(metric_names):
        metric = registry.metric(name)
        rng = np.random.default_rng([seed, 7919, index])
        start = time.perf_counter()
        try:
            with registry.blame("metric", name, f"metric {name!r}"):
                scores = metric(observer, rng)
        except NotApplicable as why:
            result.skipped[name] = str(why)
            continue
        result.seconds[name] = time.perf_counter() - start
        result.scores.update({k: float(v) for k, v in scores.items()})
    result.images_encoded = observer.images_encoded
    return result
