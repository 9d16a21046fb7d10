"""Training on correlated factors: the sampled pair's correlation against the one asked for,
the other factors left uniform, the option's errors, and what a run records."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from disentangle.cli import main
from disentangle.datasets import FactorDataset
from disentangle.errors import UsageError
from disentangle.registry import get_registry
from disentangle.sampling import (
    HeldOutView,
    TrainingSampler,
    pair_distribution,
    parse_options,
)


def exact_correlation(table: np.ndarray) -> float:
    """The Pearson correlation of the two indices of a joint distribution."""
    i, j = np.indices(table.shape)
    di, dj = i - (table * i).sum(), j - (table * j).sum()
    return float((table * di * dj).sum() / np.sqrt((table * di**2).sum()
                                                    * (table * dj**2).sum()))


@pytest.fixture(scope="module")
def dsprites() -> FactorDataset:
    return get_registry().dataset("dsprites")()


@pytest.mark.parametrize("sigma", [0.1, 0.2, 0.4])
def test_the_sampled_pair_has_the_correlation_asked_for(dsprites, sigma):
    sampler = TrainingSampler(dsprites, *parse_options([f"correlate=posX:posY:{sigma}"],
                                                       dsprites))
    asked = exact_correlation(pair_distribution(32, 32, sigma))
    factors = sampler.sample_factors(200_000, np.random.default_rng(1))
    measured = np.corrcoef(factors[:, 3], factors[:, 4])[0, 1]
    assert measured == pytest.approx(asked, abs=0.01)
    assert sampler.measured(1)["correlation.posX.posY"] == pytest.approx(asked, abs=0.01)
    # the other factors stay uniform and independent of the pair
    for k in (0, 1, 2):
        counts = np.bincount(factors[:, k], minlength=dsprites.factor_sizes[k])
        expected = len(factors) / dsprites.factor_sizes[k]
        assert np.abs(counts / expected - 1).max() < 0.1  # six standard errors at 40 values
        assert abs(np.corrcoef(factors[:, k], factors[:, 3])[0, 1]) < 0.01


def test_smaller_sigma_correlates_more_and_the_diagonal_is_most_likely():
    strengths = [exact_correlation(pair_distribution(10, 8, s)) for s in (0.1, 0.2, 0.4, 1.0)]
    assert strengths == sorted(strengths, reverse=True) and strengths[0] > 0.9
    table = pair_distribution(10, 10, 0.2)
    assert table.sum() == pytest.approx(1.0)
    assert (table.argmax(axis=1) == np.arange(10)).all()


@pytest.mark.parametrize("option, message", [
    ("anticorrelate=posX:posY:0.2", "unknown --data-option 'anticorrelate'"),
    ("correlate=posX:posY", "expected correlate=A:B:SIGMA"),
    ("holdout=posX:posY", "expected holdout=A:B:FRACTION"),
    ("holdout=posX:posY:1", "the fraction must be a number in (0, 1), not '1'"),
    ("holdout=shape:scale:0.1", "0.1 of the values must leave at least one value out and "
                                "one in for each factor"),
    ("correlate=posX:size:0.2", "dsprites has no factor 'size' (factors: shape, scale, "
                                "orientation, posX, posY)"),
    ("correlate=posX:posY:-1", "the strength must be a number in (0, inf), not '-1'"),
    ("correlate=posX:posY:strong", "the strength must be a number in (0, inf), not 'strong'"),
    ("correlate=posX:posX:0.2", "each factor may be in one option only"),
])
def test_bad_data_options_are_named(dsprites, option, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_options([option], dsprites)


def test_a_second_pair_may_not_reuse_a_factor(dsprites):
    with pytest.raises(UsageError, match="one option only"):
        parse_options(["correlate=posX:posY:0.2", "holdout=scale:posY:0.2"], dsprites)
    with pytest.raises(UsageError, match="one held-out region per run"):
        parse_options(["holdout=posX:posY:0.2", "holdout=scale:orientation:0.2"], dsprites)


def test_held_out_combinations_are_never_trained_on_and_are_what_heldout_scores_see(
        dsprites):
    correlations, held = parse_options(["holdout=posX:posY:0.25"], dsprites)
    assert not correlations and (held.first_values, held.second_values) == (8, 8)
    sampler = TrainingSampler(dsprites, correlations, held)
    factors = sampler.sample_factors(50_000, np.random.default_rng(2))
    in_corner = (factors[:, 3] >= 24) & (factors[:, 4] >= 24)
    assert not in_corner.any()
    # each value is still seen, only the combination is not
    assert set(factors[:, 3]) == set(range(32)) and set(factors[:, 4]) == set(range(32))
    assert sampler.measured(0)["held_out_share"] == pytest.approx(1 / 16)
    view = HeldOutView(dsprites, held)
    unseen = view.sample_factors(5_000, np.random.default_rng(3))
    assert ((unseen[:, 3] >= 24) & (unseen[:, 4] >= 24)).all()
    assert set(unseen[:, 2]) == set(range(40))  # the other factors stay uniform
    assert view.factor_sizes == dsprites.factor_sizes and view.index(unseen[:2]).shape == (2,)


def test_a_run_records_the_correlation_it_trained_with(workdir, capsys):
    assert main(["run", "vae", "--dataset", "dsprites", "--steps", "2", "--metrics", "mig",
                 "--no-progress", "--data-option", "correlate=posX:posY:0.2"]) == 0
    client = MlflowClient(f"sqlite:///{workdir}/mlflow.db")
    run = client.search_runs([client.get_experiment_by_name("dsprites").experiment_id])[0]
    assert run.data.params["data_options"] == "correlate=posX:posY:0.2"
    measured = run.data.metrics["data/correlation.posX.posY"]
    assert measured == pytest.approx(exact_correlation(pair_distribution(32, 32, 0.2)),
                                     abs=0.01)
    capsys.readouterr()
    assert main(["run", "vae", "--dataset", "dsprites", "--steps", "2", "--metrics", "mig",
                 "--no-progress", "--data-option", "holdout=posX:posY:0.25",
                 "--experiment", "held"]) == 0
    assert "heldout/mig" in capsys.readouterr().out
    run = client.search_runs([client.get_experiment_by_name("held").experiment_id])[0]
    assert run.data.metrics["data/held_out_share"] == pytest.approx(1 / 16)
    assert {"eval/mig", "eval/heldout/mig", "eval/heldout/mig.posX"} <= set(run.data.metrics)
    assert main(["run", "vae", "--steps", "2", "--data-option", "correlate=a:b:1"]) == 2
    assert capsys.readouterr().err.startswith("error: --data-option 'correlate=a:b:1': ")
