"""Known answers of the metrics after the reference protocol: MIG-sup, DCIMIG, JEMMIG,
Z-min / Z-max variance, InfoMEC and DCI-ES."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import identity, observer_for, registered

from disentangle import cores
from disentangle.errors import NotApplicable
from disentangle_plugins.metrics.dci_es import explicitness
from disentangle_plugins.metrics.infomec import modularity_compactness

#: every combination of two binary factors, 25 times
BINARY = np.tile(np.array([[0, 0], [0, 1], [1, 0], [1, 1]]), (25, 1))


def grid(sizes: tuple[int, ...], repeats: int = 1) -> np.ndarray:
    rows = np.stack(np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij"), -1)
    return np.tile(rows.reshape(-1, len(sizes)), (repeats, 1))


def rotated(factors: np.ndarray) -> np.ndarray:
    centred = factors - factors.mean(axis=0)
    return centred @ np.array([[1.0, 1.0], [-1.0, 1.0]]) / np.sqrt(2)


# --- MIG-sup, DCIMIG, JEMMIG -------------------------------------------------------------

def test_factors_themselves_score_best():
    factors = grid((4, 5), 3)
    assert cores.mig_sup(factors, factors)["mig_sup"] == pytest.approx(1.0)
    assert cores.dcimig(factors, factors)["dcimig"] == pytest.approx(1.0)
    assert cores.jemmig(factors, factors)["jemmig"] == pytest.approx(0.0, abs=1e-12)


def test_duplicated_factor_hand_computed():
    # both codes copy factor 0: each code alone is pure (MIG-sup 1), factor 1 has no code
    # (DCIMIG 1/2), and factor 0's best code has a rival as informative as itself
    codes = BINARY[:, [0, 0]]
    assert cores.mig_sup(codes, BINARY)["mig_sup"] == pytest.approx(1.0)
    assert cores.mig(codes, BINARY)["mig"] == pytest.approx(0.0)
    dcimig = cores.dcimig(codes, BINARY)
    assert dcimig["dcimig"] == pytest.approx(0.5)
    assert dcimig["dcimig.factor1"] == 0.0
    # with two bins: factor 0 (ln2 - ln2 + ln2) / 2 ln2 = 1/2, factor 1 2 ln2 / 2 ln2 = 1
    jemmig = cores.jemmig(codes, BINARY, bins=2)
    assert jemmig["jemmig.factor0"] == pytest.approx(0.5)
    assert jemmig["jemmig.factor1"] == pytest.approx(1.0)
    assert jemmig["jemmig"] == pytest.approx(0.75)


def test_one_code_holding_two_factors_has_no_gap():
    factors = grid((4, 4), 2)
    codes = np.column_stack([factors[:, 0] + 4 * factors[:, 1], np.zeros(len(factors))])
    scores = cores.mig_sup(codes, factors)
    assert scores["mig_sup"] == pytest.approx(0.0)
    assert scores["mig_sup.active_codes"] == 1.0  # the constant code is left out


def test_noise_and_rotation_score_low():
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 10, size=(10_000, 2))
    noise = rng.normal(size=(10_000, 2))
    for core, name in [(cores.mig_sup, "mig_sup"), (cores.dcimig, "dcimig")]:
        assert core(noise, factors)[name] < 0.05
        assert core(rotated(factors), factors)[name] < 0.5 * core(factors, factors)[name]
    assert cores.jemmig(noise, factors)["jemmig"] > 0.8
    assert cores.jemmig(rotated(factors), factors)["jemmig"] > 0.3


def test_information_gaps_need_two_factors():
    with pytest.raises(NotApplicable, match="two factors"):
        cores.dcimig(BINARY[:, :1].astype(float), BINARY[:, :1])
    with pytest.raises(NotApplicable, match="no factor varies"):
        cores.jemmig(np.zeros((4, 2)), np.zeros((4, 2), dtype=int))


# --- Z-min and Z-max variance ----------------------------------------------------------

@pytest.mark.parametrize("name", ["z_min", "z_max"])
def test_votes_find_the_factor_copied_by_each_code(name):
    small = {"batch_size": 20, "num_train": 60, "num_eval": 60, "num_variance_estimate": 500}
    scores = registered(name)(observer_for(identity), np.random.default_rng(0), **small)
    assert scores[name] == 1.0
    assert scores[f"{name}.active_codes"] == 3.0
    # one code copying one factor takes every vote: the classifier is right at chance only
    lone = registered(name)(observer_for(lambda f: f[:, :1] + 0.0 * f[:, 1:]),
                            np.random.default_rng(0), **small)
    assert lone[name] == pytest.approx(0.0, abs=0.15)


def test_z_max_holds_all_but_one_factor():
    codes = np.zeros((2, 5, 3))
    codes[0, :, 1] = np.arange(5)  # batch 0 varies code 1
    codes[1, :, 2] = np.arange(5)  # batch 1 varies code 2
    scores = cores.z_max(np.random.default_rng(0).normal(size=(50, 3)), codes,
                         np.array([1, 2]), codes, np.array([1, 2]), 3)
    assert scores["z_max"] == 1.0 and scores["z_max.train_accuracy"] == 1.0


# --- InfoMEC ----------------------------------------------------------------------------

def test_infomec_aggregation_hand_computed():
    infom, infoc = modularity_compactness(np.array([[1.0, 0.5], [0.0, 0.5]]))
    assert infom == pytest.approx(0.5)
    assert infoc == pytest.approx(2 / 3)


def test_infomec_on_factors_noise_and_duplicates():
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 4, size=(3000, 2))
    best = cores.infomec(factors + 0.01 * rng.normal(size=factors.shape),
                         np.zeros((3000, 0), dtype=int), factors)
    assert best["infomec.infom"] > 0.9 and best["infomec.infoc"] > 0.9
    assert best["infomec.infoe"] > 0.5
    noise = cores.infomec(rng.normal(size=(3000, 2)), np.zeros((3000, 0), dtype=int), factors)
    assert noise["infomec.infoe"] < 0.02
    copies = cores.infomec(factors[:, [0, 0]] + 0.01 * rng.normal(size=factors.shape),
                           np.zeros((3000, 0), dtype=int), factors)
    assert copies["infomec.infom"] > 0.9  # each code is pure
    assert copies["infomec.infoc"] < 0.5  # factor 0 is split over two codes
    categorical = cores.infomec(np.zeros((3000, 0)), factors, factors)
    # the plug-in estimate leaves a little chance information with the other factor
    assert categorical["infomec.infom"] == pytest.approx(1.0, abs=0.01)
    assert categorical["infomec.infoc"] == pytest.approx(1.0, abs=0.01)


# --- DCI-ES -----------------------------------------------------------------------------

@pytest.mark.parametrize(("losses", "expected"), [
    ([1.0, 0.5, 0.0], 0.5), ([0.0, 0.0, 0.0], 1.0), ([1.0, 1.0, 1.0], 0.0),
    ([1.0, 0.0, 0.0], 0.75), ([1.0, 0.2, 0.6], 0.6), ([2.0, 1.5, 1.0], 0.0)])
def test_explicitness_hand_computed(losses, expected):
    assert explicitness(np.array([0, 1, 2]), np.array(losses), 1.0) == pytest.approx(expected)


def test_dci_es_orders_factors_rotation_and_noise():
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 4, size=(1500, 2))
    noisy = factors + 0.05 * rng.normal(size=factors.shape)
    small = {"depths": (1, 2, 4, 8), "trees": 10, "jobs": 1}

    def explicit(codes):
        return cores.dci_es(codes[:1000], factors[:1000], codes[1000:], factors[1000:],
                            **small)

    best, turned = explicit(noisy), explicit(rotated(noisy))
    noise = explicit(rng.normal(size=factors.shape))
    assert best["dci_es"] > turned["dci_es"] > noise["dci_es"]
    assert best["dci_es"] > 0.7 and noise["dci_es"] < 0.1
    assert best["dci_es.size"] == 1.0
    assert explicit(np.column_stack([noisy, noisy]))["dci_es.size"] == 0.5
