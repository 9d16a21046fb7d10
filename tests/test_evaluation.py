"""Encoding each image once: the observer's cache, the whole-grid plan, and its scores.

The encoder here sums image pixels with fixed integer weights, so its codes are exact
whatever the batch: the grid path and the sample path must give identical scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from conftest import CodeModel, TinyDataset, identity
from toy.toy_plugin import ToyBlobs

from disentangle.errors import UsageError
from disentangle.evaluation import Observer, evaluate, parse_metric_params, plan_grid
from disentangle.models import Model, Representation
from disentangle.registry import get_registry

SMALL = {"mig": {"num_points": 500},
         "factor_vae": {"num_train": 50, "num_eval": 30, "num_variance_estimate": 300},
         "beta_vae": {"num_train": 60, "num_eval": 40, "batch_size": 8},
         "sap": {"num_train": 300, "num_test": 100},
         "irs": {"num_points": 500},
         "pairwise_mutual_info": {"num_points": 500}}


@dataclass(frozen=True)
class NoConfig:
    pass


class PixelSums(Model):
    """Codes = pixels times a fixed integer matrix: exact, so independent of batching."""

    name = "pixel_sums"
    Config = NoConfig

    def __init__(self, dataset: ToyBlobs):
        super().__init__(NoConfig(), dataset, torch.device("cpu"))
        pixels = int(np.prod(dataset.image_shape))
        self.weights = torch.from_numpy(
            np.random.default_rng(0).integers(-3, 4, (pixels, 4)).astype(np.float64))
        self.encoded = 0

    def encode(self, images: torch.Tensor) -> Representation:
        self.encoded += len(images)
        codes = images.flatten(1).double() @ self.weights
        return Representation(codes.numpy(), np.zeros((len(images), 0), np.int64))

    def train_step(self, images: torch.Tensor, factors: np.ndarray, step: int) -> dict[str, float]:
        raise NotImplementedError("a fixed encoder is not trained")

    def generate(self, n: int, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError("a fixed encoder does not generate")


def test_the_observer_encodes_each_combination_once() -> None:
    model = CodeModel(identity)
    observer = Observer(model, TinyDataset(), batch_size=7)
    rng = np.random.default_rng(0)
    first = TinyDataset().sample_factors(40, rng)
    np.testing.assert_array_equal(observer(first, rng).continuous, first)
    again = np.concatenate([first[::-1], TinyDataset().sample_factors(40, rng)])
    np.testing.assert_array_equal(observer(again, rng).continuous, again)
    unique = len(np.unique(TinyDataset().index(again)))
    assert observer.images_encoded == sum(model.calls) == unique
    assert observer.rows_requested == 120
    assert max(model.calls) <= 7
    observer.encode_grid(rng)
    assert observer.images_encoded == 60


def test_an_observer_of_random_images_encodes_every_request() -> None:
    class Labelled(TinyDataset):
        deterministic = False

    observer = Observer(CodeModel(identity), Labelled())
    factors = np.zeros((5, 3), dtype=np.int64)
    observer(factors, np.random.default_rng(0))
    observer(factors, np.random.default_rng(0))
    assert observer.images_encoded == 10
    with pytest.raises(ValueError, match="no deterministic factor grid"):
        observer.encode_grid(np.random.default_rng(0))


def test_grid_and_sample_paths_give_identical_scores() -> None:
    registry = get_registry()
    dataset = ToyBlobs()
    grid_model, sample_model = PixelSums(dataset), PixelSums(dataset)
    names = list(SMALL)
    on_grid = evaluate(grid_model, dataset, registry.metrics(names), 3, SMALL, grid=True)
    sampled = evaluate(sample_model, dataset, registry.metrics(names), 3, SMALL, grid=False)
    assert on_grid.scores == sampled.scores
    assert on_grid.skipped == sampled.skipped == {}
    assert on_grid.grid and not sampled.grid
    assert on_grid.images_encoded == grid_model.encoded == dataset.num_combinations == 147
    assert sampled.images_encoded == sample_model.encoded <= dataset.num_combinations
    assert on_grid.rows_requested == sampled.rows_requested > 147


def test_the_plan_encodes_the_grid_only_when_asked_for_more() -> None:
    registry = get_registry()
    dataset = ToyBlobs()
    small = evaluate(PixelSums(dataset), dataset, registry.metrics(["mig"]), 0,
                     {"mig": {"num_points": 100}})
    assert not small.grid and small.images_encoded < 100
    # FactorVAE's protocol asks for 970,000 rows of a 147-image grid
    assert registry.metric("factor_vae").images_requested(dataset) == 970_000
    assert plan_grid(dataset, 970_000) and not plan_grid(dataset, 147)
    full = evaluate(PixelSums(dataset), dataset, registry.metrics(["factor_vae"]), 0)
    assert full.grid and full.images_encoded == 147 and full.rows_requested == 970_000


def test_metric_parameters_are_checked() -> None:
    registry = get_registry()
    dataset = ToyBlobs()
    with pytest.raises(UsageError, match="no parameter 'num_points'"):
        parse_metric_params(registry.metric, {"dci.num_points": "3"})
    with pytest.raises(UsageError, match="bad value"):
        parse_metric_params(registry.metric, {"dci.num_train": "many"})
    parsed = parse_metric_params(registry.metric, {"dci.num_train": "30",
                                                   "irs.diff_quantile": "0.9"})
    assert parsed == {"dci": {"num_train": 30}, "irs": {"diff_quantile": 0.9}}
    with pytest.raises(UsageError, match="not evaluated"):
        evaluate(PixelSums(dataset), dataset, registry.metrics(["mig"]), 0,
                 {"dci": {"num_train": 3}})


def test_metrics_of_one_kind_of_sample_share_one_draw_and_each_reproduces_alone() -> None:
    class Labelled(TinyDataset):
        deterministic = False

    registry = get_registry()
    names = ["gaussian_total_correlation", "gaussian_wasserstein_correlation",
             "pairwise_mutual_info", "mig", "mig_sup", "jemmig"]
    params = {name: {"num_points": 400} for name in names}
    together = evaluate(CodeModel(identity), Labelled(), registry.metrics(names), 5, params)
    assert together.images_encoded == 400  # one draw, one encoding, six metrics
    for name in ("pairwise_mutual_info", "jemmig"):
        alone = evaluate(CodeModel(identity), Labelled(), registry.metrics([name]), 5,
                         {name: params[name]})
        assert alone.scores[name] == together.scores[name]
    other_seed = evaluate(CodeModel(identity), Labelled(), registry.metrics(["mig"]), 6,
                          {"mig": params["mig"]})
    assert other_seed.scores["mig"] != together.scores["mig"]


def test_an_observer_is_reused_only_with_its_own_seed() -> None:
    observer = Observer(CodeModel(identity), TinyDataset(), seed=1)
    with pytest.raises(ValueError, match="draws of seed 1, not 2"):
        evaluate(observer.model, observer.dataset, [], 2, observer=observer)
