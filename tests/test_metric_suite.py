"""The metric suite on representations with known answers, and hand-computed small cases.

Representations of the factors of :class:`TinyDataset` (sizes 3, 4, 5): the factors
themselves (every metric at its best), noise (at its worst), a permuted and rescaled copy
(unchanged), a 45-degree rotation of two standardised factors (worse) and a duplicated
factor. Sample sizes are far below the protocol's, through the samplers' parameters.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
from conftest import CodeModel, TinyDataset, identity, registered

import disentangle
from disentangle.errors import NotApplicable
from disentangle.evaluation import Observer
from disentangle.metrics import fixed_factor_batches, normalized_entropy
from disentangle_plugins.metrics.dci import completeness, disentanglement
from disentangle_plugins.metrics.modularity import modularity_of

#: small versions of every factor metric's protocol
SMALL = {
    "mig": {"num_points": 2000},
    "factor_vae": {"num_train": 300, "num_eval": 200, "num_variance_estimate": 1000},
    "beta_vae": {"num_train": 300, "num_eval": 200},
    "dci": {"num_train": 300, "num_test": 150},
    "dci_fast": {"num_train": 400, "num_test": 200},
    "sap": {"num_train": 1000, "num_test": 500},
    "modularity": {"num_train": 1000, "num_test": 500},
    "irs": {"num_points": 2000},
}
SCALES = np.array([0.8165, 1.118, 1.414])  # standard deviations of uniform 3, 4, 5 values


def standardized(factors: np.ndarray) -> np.ndarray:
    return (factors - np.array([1.0, 1.5, 2.0])) / SCALES


def rotated(factors: np.ndarray) -> np.ndarray:
    c = np.sqrt(0.5)
    return standardized(factors) @ np.array([[1, 0, 0], [0, c, -c], [0, c, c]])


def permuted_rescaled(factors: np.ndarray) -> np.ndarray:
    return (factors * np.array([3.0, -0.5, 10.0]) + 7.0)[:, [2, 0, 1]]


def run(name: str, codes: Callable[[np.ndarray], np.ndarray], seed: int = 0) -> dict[str, float]:
    observer = Observer(CodeModel(codes), TinyDataset())
    return registered(name)(observer, np.random.default_rng(seed), **SMALL[name])


# --- known answers through the sampling protocols ---------------------------------------

BEST = {"mig": 0.99, "factor_vae": 1.0, "beta_vae": 0.999, "dci": 0.999,
        "dci.completeness": 0.999, "dci.informativeness_test": 1.0, "dci_fast": 0.999,
        "modularity": 0.99, "modularity.explicitness": 0.99, "irs": 1.0}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_the_factors_themselves_score_best_and_a_rotation_lower(name: str) -> None:
    perfect = run(name, identity)
    for key, floor in BEST.items():
        if key.split(".")[0] == name:
            assert perfect[key] >= floor, key
    if name != "beta_vae":  # BetaVAE's linear classifier sees through rotations
        assert run(name, rotated)[name] < perfect[name] - 0.1


@pytest.mark.parametrize("name", ["mig", "factor_vae", "dci", "modularity", "irs"])
def test_permuting_and_rescaling_codes_changes_nothing(name: str) -> None:
    # (SAP and BetaVAE fit regularised linear models to raw codes: scale matters to them.)
    expected = run(name, identity, seed=1)
    assert run(name, permuted_rescaled, seed=1) == pytest.approx(expected, abs=1e-9)


def test_noise_scores_at_chance() -> None:
    rng = np.random.default_rng(2)
    factors = TinyDataset().sample_factors(1500, rng)
    noise = rng.normal(size=(1500, 3))
    m = disentangle.cores
    assert m.mig(noise, factors)["mig"] < 0.02
    assert m.sap(noise[:1000], factors[:1000], noise[1000:], factors[1000:])["sap"] < 0.05
    # IRS is not 0 for noise: holding a factor leaves the full spread, and IRS compares
    # the spread's 0.99 quantile with its maximum
    deviation = np.abs(noise - noise.mean(axis=0))
    unheld = 1 - np.quantile(deviation, 0.99, axis=0) / deviation.max(axis=0)
    assert m.irs(noise, factors)["irs"] == pytest.approx(
        np.average(unheld, weights=deviation.max(axis=0)), abs=0.05)
    dci = m.dci_fast(noise[:1000], factors[:1000], noise[1000:], factors[1000:])
    assert dci["dci_fast"] < 0.2 and dci["dci_fast.informativeness_test"] < 0.45
    explicit = m.modularity(noise[:1000], factors[:1000], noise[1000:], factors[1000:])
    assert explicit["modularity.explicitness"] == pytest.approx(0.5, abs=0.05)


def test_factor_vae_on_noise_is_near_chance() -> None:
    rng = np.random.default_rng(3)
    dataset = TinyDataset()
    train_factors, train_fixed = fixed_factor_batches(dataset, 300, 64, rng)
    eval_factors, eval_fixed = fixed_factor_batches(dataset, 300, 64, rng)
    scores = disentangle.cores.factor_vae(
        rng.normal(size=(1000, 4)), rng.normal(size=(300, 64, 4)), train_fixed,
        rng.normal(size=(300, 64, 4)), eval_fixed, 3)
    assert scores["factor_vae"] < 0.45
    assert train_factors.shape == (300, 64, 3)
    # each batch holds its factor fixed and varies the others
    held = train_factors[np.arange(300), :, train_fixed]
    assert (held == held[:, :1]).all()
    assert len(np.unique(eval_factors[0, :, (eval_fixed[0] + 1) % 3])) > 1


def test_a_duplicated_code_has_no_gap() -> None:
    factors = TinyDataset().sample_factors(1000, np.random.default_rng(4))
    codes = np.concatenate([factors, factors[:, :1]], axis=1).astype(float)
    assert disentangle.cores.mig(codes, factors)["mig.factor0"] == 0.0
    sap = disentangle.cores.sap(codes[:600], factors[:600], codes[600:], factors[600:])
    assert sap["sap.factor0"] == 0.0 and sap["sap.factor1"] > 0.2


def test_factor_vae_prunes_collapsed_codes() -> None:
    scores = run("factor_vae", lambda f: np.concatenate([identity(f), np.zeros((len(f), 2))],
                                                        axis=1))
    assert scores["factor_vae"] == 1.0 and scores["factor_vae.active_codes"] == 3
    assert run("factor_vae", lambda f: 0.01 * identity(f))["factor_vae.active_codes"] == 0


# --- hand-computed cases ----------------------------------------------------------------

def test_dci_disentanglement_and_completeness_by_hand() -> None:
    assert disentanglement(np.eye(3)) == pytest.approx(1.0)
    assert completeness(np.eye(3)) == pytest.approx(1.0)
    assert disentanglement(np.ones((3, 3))) == pytest.approx(0.0)
    # two codes both only about factor 0: each code is pure, factor 0 is split in two
    both = np.array([[1.0, 0.0], [1.0, 0.0]])
    assert disentanglement(both) == pytest.approx(1.0)
    assert completeness(both) == pytest.approx(0.0, abs=1e-9)
    # against scipy's entropy on an arbitrary matrix, with the reference's weighting
    r = np.array([[0.5, 0.2, 0.0], [0.1, 0.1, 0.6], [0.0, 0.0, 0.3], [0.2, 0.0, 0.1]])
    per_code = 1 - scipy.stats.entropy(r.T + 1e-11, base=3)
    assert disentanglement(r) == pytest.approx((per_code * r.sum(1) / r.sum()).sum())
    per_factor = 1 - scipy.stats.entropy(r + 1e-11, base=4)
    assert completeness(r) == pytest.approx((per_factor * r.sum(0) / r.sum()).sum())
    np.testing.assert_allclose(normalized_entropy(np.array([[1.0, 1.0], [1.0, 3.0]]), 1),
                               scipy.stats.entropy([[1, 1], [1, 3]], base=2, axis=1))



@pytest.mark.parametrize("name", ["dci", "dci_fast"])
def test_dci_fits_in_worker_processes_match_in_process_fits(name: str) -> None:
    rng = np.random.default_rng(4)
    factors = np.stack([rng.integers(0, k, 600) for k in (3, 7, 2)], axis=1)
    codes = standardized(factors[:, [2, 0, 1]] % 5) + 0.5 * rng.normal(size=(600, 3))
    core = getattr(disentangle.cores, name)
    split = (codes[:400], factors[:400], codes[400:], factors[400:])
    assert core(*split, seed=9, jobs=2) == core(*split, seed=9, jobs=1)

def test_modularity_by_hand() -> None:
    # code 0 informs one factor (1); code 1 two equally (1 - 1/1 = 0); code 2 none (0)
    info = np.array([[2.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    assert modularity_of(info) == pytest.approx(1 / 3)


def test_irs_by_hand() -> None:
    # factor 0 = 0 for the first two points; code deviations from group means are all 1,
    # the largest deviation from the mean (6) is 6: IRS = 1 - 1/6
    codes = np.array([[0.0], [2.0], [10.0], [12.0]])
    factors = np.array([[0], [0], [1], [1]])
    assert disentangle.cores.irs(codes, factors)["irs"] == pytest.approx(5 / 6)
    constant = disentangle.cores.irs(np.ones((4, 2)), factors)
    assert constant == {"irs": 0.0, "irs.active_codes": 0.0}


def test_factor_vae_votes_by_hand() -> None:
    # two batches holding factor 1; code 1 is constant in both -> votes (1, code 1)
    batch = np.array([[[0.0, 5.0], [1.0, 5.0], [2.0, 5.0]]] * 2)
    scores = disentangle.cores.factor_vae(np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]),
                                            batch, np.array([1, 1]), batch, np.array([1, 1]), 2)
    assert scores["factor_vae"] == 1.0 and scores["factor_vae.train_accuracy"] == 1.0


def test_beta_vae_features_and_classifier() -> None:
    first = np.array([[[0.0, 1.0], [2.0, 3.0]]])
    second = np.array([[[1.0, 1.0], [4.0, 2.0]]])
    from disentangle_plugins.metrics.beta_vae import pair_features
    np.testing.assert_allclose(pair_features(first, second), [[1.5, 0.5]])


def test_sap_with_continuous_factors_by_hand() -> None:
    f = np.array([[0], [1], [2], [3]])
    codes = np.stack([[0.0, 1.0, 2.0, 3.0], [1.0, 0.0, 0.0, 1.0]], axis=1)  # r^2 = 1 and 0
    scores = disentangle.cores.sap(codes, f, codes, f, continuous=True)
    assert scores["sap"] == pytest.approx(1.0)


def test_unsupervised_scores_by_hand() -> None:
    x = np.array([1.0, -1.0, 1.0, -1.0])
    y = np.array([1.0, -1.0, -1.0, 1.0])
    m = disentangle.cores
    independent = np.stack([x, y], axis=1)
    assert m.gaussian_total_correlation(independent)["gaussian_total_correlation"] == \
        pytest.approx(0.0, abs=1e-12)
    mixed = np.stack([x, x + y], axis=1)  # covariance (4/3) [[1, 1], [1, 2]]
    assert m.gaussian_total_correlation(mixed)["gaussian_total_correlation"] == \
        pytest.approx(0.5 * np.log(2))
    cov = np.cov(mixed, rowvar=False)
    by_sqrtm = 2 * np.trace(cov) - 2 * np.trace(scipy.linalg.sqrtm(cov * np.diag(cov)[:, None]))
    scores = m.gaussian_wasserstein_correlation(mixed)
    assert scores["gaussian_wasserstein_correlation"] == pytest.approx(by_sqrtm.real)
    assert scores["gaussian_wasserstein_correlation.normalized"] == \
        pytest.approx(by_sqrtm.real / np.trace(cov))
    copies = np.repeat(np.arange(4.0), 5)[:, None].repeat(2, axis=1)
    assert m.pairwise_mutual_info(copies)["pairwise_mutual_info"] == pytest.approx(np.log(4))
    with_constant = np.concatenate([mixed, np.zeros((4, 1))], axis=1)
    assert m.gaussian_total_correlation(with_constant)["gaussian_total_correlation"] == \
        pytest.approx(0.5 * np.log(2))
    with pytest.raises(NotApplicable):
        m.pairwise_mutual_info(x[:, None])


def test_unsupervised_scores_of_independent_factors_are_near_zero() -> None:
    for name in ("gaussian_total_correlation", "gaussian_wasserstein_correlation",
                 "pairwise_mutual_info"):
        observer = Observer(CodeModel(standardized), TinyDataset())
        independent = registered(name)(observer, np.random.default_rng(5), num_points=4000)
        observer = Observer(CodeModel(lambda f: standardized(f) @ np.array(
            [[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])), TinyDataset())
        mixed = registered(name)(observer, np.random.default_rng(5), num_points=4000)
        assert independent[name] < 0.01 and mixed[name] > 0.1, name


def test_metric_parameters_and_requested_images() -> None:
    metric = registered("factor_vae")
    assert metric.parameters()["num_train"] == 10_000
    assert metric.images_requested(TinyDataset()) == 10_000 + 15_000 * 64
    assert registered("beta_vae").images_requested(TinyDataset()) == 2 * 64 * 15_000
    assert registered("dci").images_requested(TinyDataset(), {"num_train": 10}) == 5_010
    with pytest.raises(ValueError, match="no parameter num_points"):
        registered("dci").resolve({"num_points": 3})
