"""Scoring a model: factor rows -> images -> codes -> metric scores.

Every image is encoded at most once per evaluation. For a deterministic dataset (images a
function of the factors) the :class:`Observer` keeps the codes of every factor combination
it has encoded and answers repeats by lookup. When the metrics of an evaluation will ask
for more rows than the dataset's factor grid has combinations, :func:`evaluate` has the
whole grid encoded first, in large batches, and every metric is then answered by lookup.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from disentangle.codefactor import CodeFactor
from disentangle.config import parse_value
from disentangle.datasets import FactorDataset
from disentangle.errors import NotApplicable, UsageError
from disentangle.metrics import Metric
from disentangle.models import Model, Representation, eval_mode
from disentangle.registry import Entry, blame

#: encodings at least this large show a progress bar
_PROGRESS_FROM = 100_000


def encoding_batch(device: torch.device) -> int:
    """Images per encoder call by default: 64 on a CPU, 1,024 on an accelerator.

    On a CPU a batch's activations must stay in the processor's caches, which small batches
    do (the throughput at both sizes is in ``benchmarks/results/metric_suite.txt``). An
    accelerator instead needs large batches to amortise the cost of each call.
    """
    return 64 if device.type == "cpu" else 1024


class Observer:
    """Gives metrics the codes of the images at given factor rows, encoded in batches of
    ``batch_size`` images (default: :func:`encoding_batch` for the model's device).

    For a deterministic dataset each factor combination (``dataset.index``) is encoded once
    and looked up afterwards. A dataset whose factors are labels shared by many images
    (``deterministic = False``) gets fresh images, drawn with the caller's ``rng``, for
    every request. ``images_encoded`` counts what went through the encoder and
    ``rows_requested`` what the metrics asked for.
    """

    def __init__(self, model: Model, dataset: FactorDataset, batch_size: int | None = None,
                 progress: bool = False, seed: int = 0):
        self.model = model
        self.dataset = dataset
        self.seed = seed
        self._shared: dict[int, tuple[Representation, np.ndarray]] = {}
        self._batch_size = batch_size
        self.progress = progress
        self.images_encoded = 0
        self.rows_requested = 0
        #: sorted grid indices already encoded, and their codes in the same order
        self._keys = np.zeros(0, dtype=np.int64)
        self._codes: Representation | None = None

    @property
    def batch_size(self) -> int:
        """Images per encoder call: the one given, else the default for the model's device."""
        return self._batch_size or encoding_batch(self.model.device)

    def __call__(self, factors: np.ndarray, rng: np.random.Generator) -> Representation:
        factors = self.dataset.check_factors(factors)
        self.rows_requested += len(factors)
        if not self.dataset.deterministic:
            return self._encode(factors, rng)
        keys = self.dataset.index(factors)
        self._add(np.unique(keys), rng)
        return self._codes.take(np.searchsorted(self._keys, keys))

    def shared_sample(self, num_points: int) -> tuple[Representation, np.ndarray]:
        """The representation and factors of the uniform draw of ``num_points`` rows that
        every metric of an evaluation with this observer's seed shares; drawn and encoded
        once."""
        if num_points not in self._shared:
            rng = np.random.default_rng([self.seed, 7919, 1, num_points])
            factors = self.dataset.sample_factors(num_points, rng)
            self._shared[num_points] = (self(factors, rng), factors)
        return self._shared[num_points]

    def encode_grid(self, rng: np.random.Generator) -> None:
        """Encode every factor combination of the (deterministic) dataset not yet encoded."""
        if not self.dataset.deterministic:
            raise ValueError(f"dataset {self.dataset.name!r} has no deterministic factor grid")
        self._add(np.arange(self.dataset.num_combinations, dtype=np.int64), rng)

    def _add(self, keys: np.ndarray, rng: np.random.Generator) -> None:
        """Encode the sorted unique grid indices ``keys`` that are not cached yet."""
        new = keys[~np.isin(keys, self._keys, assume_unique=True)]
        if not len(new):
            return
        codes = self._encode(self.dataset.factors_of(new), rng)
        keys = np.concatenate([self._keys, new])
        order = np.argsort(keys, kind="stable")
        merged = codes if self._codes is None else Representation.concatenate([self._codes,
                                                                               codes])
        self._keys, self._codes = keys[order], merged.take(order)

    def _encode(self, factors: np.ndarray, rng: np.random.Generator) -> Representation:
        parts = []
        bar = tqdm(total=len(factors), unit="img", desc="encoding", leave=False,
                   disable=not self.progress or len(factors) < _PROGRESS_FROM)
        with bar, eval_mode(self.model):
            for start in range(0, len(factors), self.batch_size):
                chunk = factors[start:start + self.batch_size]
                images = self.dataset.images_on(self.model.device, chunk, rng)
                parts.append(self.model.encode(images))
                bar.update(len(chunk))
        self.images_encoded += len(factors)
        return Representation.concatenate(parts)


@dataclass
class Evaluation:
    """The outcome of one evaluation: scores, metrics skipped (with why), and costs.

    ``seconds`` has one entry per metric scored, plus ``"encode_grid"`` when the whole grid
    was encoded up front; ``grid`` says whether it was.
    """

    scores: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    images_encoded: int = 0
    rows_requested: int = 0
    grid: bool = False
    #: which code holds which factor, on the shared sample (set by the run's evaluation)
    code_factor: CodeFactor | None = None


def parse_metric_params(metric: Callable[[str], Metric],
                        assignments: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """``{"dci.num_train": "1000"}`` -> ``{"dci": {"num_train": 1000}}``, each value parsed
    as the type of the parameter's default; ``metric(name)`` looks a metric up (raising
    UsageError for an unknown one); unknown parameters raise UsageError."""
    params: dict[str, dict[str, Any]] = {}
    for key, text in assignments.items():
        name, _, param = key.rpartition(".")
        if not name:
            raise UsageError(f"metric parameters are METRIC.NAME=VALUE, got {key!r}")
        defaults = metric(name).parameters()
        if param not in defaults:
            raise UsageError(f"metric {name!r} has no parameter {param!r}; "
                             f"it has: {', '.join(defaults)}")
        try:
            params.setdefault(name, {})[param] = parse_value(type(defaults[param]), text)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"bad value {text!r} for {key}: {exc}") from None
    return params


def evaluation_rng(seed: int, metric_index: int | None = None) -> np.random.Generator:
    """The random draws of an evaluation with ``seed``: those of its ``metric_index``-th
    metric, or (None) those of the grid encoding. Each metric's draws depend on the seed and
    its position alone, so one metric can be scored again on exactly the same points."""
    key = [seed, 7919] if metric_index is None else [seed, 7919, metric_index]
    return np.random.default_rng(key)


def plan_grid(dataset: FactorDataset, rows_requested: int) -> bool:
    """Whether to encode ``dataset``'s whole factor grid first: when it is deterministic and
    the metrics will ask for more rows than it has combinations."""
    return dataset.deterministic and rows_requested > dataset.num_combinations


def evaluate(model: Model, dataset: FactorDataset, metrics: Sequence[Entry[Metric]], seed: int,
             params: Mapping[str, Mapping[str, Any]] | None = None,
             batch_size: int | None = None, grid: bool | None = None,
             progress: bool = False, observer: Observer | None = None) -> Evaluation:
    """Score ``model`` with each of the registered ``metrics`` (``registry.metrics(names)``);
    the draws depend on ``seed`` alone. An unexpected error in a metric names its plugin.

    ``params`` maps a metric name to parameters of its sampler (``num_train``...).
    ``batch_size`` is the images per encoder call (default: :func:`encoding_batch`).
    ``grid`` forces (True) or forbids (False) encoding the whole factor grid first; by
    default :func:`plan_grid` decides from what the metrics say they will ask for. The
    scores do not depend on this choice for a deterministic encoder. ``observer`` reuses
    the encodings of an earlier evaluation of the same model (its counters keep adding up).

    When there are metrics, the model first gets :meth:`Model.prepare_evaluation` (e.g. a
    GAN fits its inverse encoder), so every encoding is made after it; the diagnostics it
    returns are logged with the scores. Since that step may depend on ``seed`` (a GAN's
    inverse encoder does), reuse an ``observer`` only with the seed that filled it.
    """
    params = dict(params or {})
    unknown = set(params) - {entry.name for entry in metrics}
    if unknown:
        raise UsageError(f"parameters given for metrics not evaluated: {sorted(unknown)}")
    try:
        resolved = {e.name: e.obj.resolve(params.get(e.name)) for e in metrics}
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    result = Evaluation()
    if metrics:
        start = time.perf_counter()
        result.scores.update(model.prepare_evaluation(seed))
        result.seconds["prepare_evaluation"] = time.perf_counter() - start
    if observer is None:
        observer = Observer(model, dataset, batch_size, progress, seed)
    elif observer.model is not model or observer.dataset is not dataset:
        raise ValueError("the observer given encodes another model or dataset")
    elif observer.seed != seed:
        raise ValueError(f"the observer given shares the draws of seed {observer.seed}, "
                         f"not {seed}")
    if grid is None:
        # metrics that do not say what they ask for count as asking nothing
        requested = [e.obj.images_requested(dataset, params.get(e.name)) for e in metrics]
        grid = plan_grid(dataset, sum(n for n in requested if n is not None))
    if grid:
        start = time.perf_counter()
        observer.encode_grid(evaluation_rng(seed))
        result.seconds["encode_grid"] = time.perf_counter() - start
        result.grid = True
    for index, entry in enumerate(metrics):
        rng = evaluation_rng(seed, index)
        start = time.perf_counter()
        try:
            with blame(entry, f"metric {entry.name!r}"):
                scores = entry.obj(observer, rng, **resolved[entry.name])
        except NotApplicable as why:
            result.skipped[entry.name] = str(why)
            continue
        result.seconds[entry.name] = time.perf_counter() - start
        result.scores.update({k: float(v) for k, v in scores.items()})
    result.images_encoded = observer.images_encoded
    result.rows_requested = observer.rows_requested
    return result
