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
from disentangle.sampling import CorrelatedSampler, pair_distribution, parse_options


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
    sampler = CorrelatedSampler(dsprites, parse_options([f"correlate=posX:posY:{sigma}"],
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
    ("correlate=posX:size:0.2", "dsprites has no factor 'size' (factors: shape, scale, "
                                "orientation, posX, posY)"),
    ("correlate=posX:posY:-1", "the strength must be a positive number, not '-1'"),
    ("correlate=posX:posY:strong", "the strength must be a positive number, not 'strong'"),
    ("correlate=posX:posX:0.2", "each factor may be in one correlated pair only"),
])
def test_bad_data_options_are_named(dsprites, option, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_options([option], dsprites)


def test_a_second_pair_may_not_reuse_a_factor(dsprites):
    with pytest.raises(UsageError, match="one correlated pair only"):
        parse_options(["correlate=posX:posY:0.2", "correlate=scale:posY:0.2"], dsprites)


def test_a_run_records_the_correlation_it_trained_with(workdir, capsys):
    assert main(["run", "vae", "--dataset", "dsprites", "--steps", "2", "--metrics", "mig",
                 "--no-progress", "--data-option", "correlate=posX:posY:0.2"]) == 0
    client = MlflowClient("sqlite:///mlflow.db")
    run = client.search_runs([client.get_experiment_by_name("dsprites").experiment_id])[0]
    assert run.data.params["data_options"] == "correlate=posX:posY:0.2"
    measured = run.data.metrics["data/correlation.posX.posY"]
    assert measured == pytest.approx(exact_correlation(pair_distribution(32, 32, 0.2)),
                                     abs=0.01)
    capsys.readouterr()
    assert main(["run", "vae", "--steps", "2", "--data-option", "correlate=a:b:1"]) == 2
    assert capsys.readouterr().err.startswith("error: --data-option 'correlate=a:b:1': ")
