"""Metric helpers, MIG and categorical accuracy on hand-made cases with known answers
(on conftest's tiny dataset, whose "image" is the factor row itself)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import CodeModel, TinyDataset, identity, observer_for, registered
from sklearn.metrics import mutual_info_score

import disentangle
from disentangle.errors import NotApplicable
from disentangle.evaluation import Observer
from disentangle.metrics import discretize, entropies, mutual_info_matrix
from disentangle.registry import get_registry

# --- helpers ----------------------------------------------------------------------------

def test_discretize_matches_the_reference_histogram_binning() -> None:
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(500, 3)) * [1.0, 10.0, 0.1]
    binned = discretize(codes, 20)
    for i in range(3):
        expected = np.digitize(codes[:, i], np.histogram(codes[:, i], 20)[1][:-1])
        np.testing.assert_array_equal(binned[:, i], expected)
    assert binned.min() == 1 and binned.max() == 20


def test_discretize_keeps_integer_codes_apart() -> None:
    codes = np.arange(20, dtype=float)[:, None]
    assert len(np.unique(discretize(codes, 20))) == 20


def test_mutual_info_matrix_equals_sklearn_and_keeps_orientation() -> None:
    rng = np.random.default_rng(1)
    a = np.stack([rng.integers(0, 7, 300), rng.integers(0, 2, 300)], axis=1)
    b = np.stack([a[:, 0] // 2, rng.integers(0, 5, 300), a[:, 1] + 3 * (a[:, 0] % 2)], axis=1)
    info = mutual_info_matrix(a, b)
    assert info.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            assert info[i, j] == pytest.approx(mutual_info_score(a[:, i], b[:, j]), rel=1e-12,
                                               abs=1e-15)


def test_mutual_info_of_a_constant_is_zero_and_entropy_is_in_nats() -> None:
    labels = np.array([[0, 5], [1, 5], [2, 5], [3, 5]])
    assert mutual_info_matrix(labels, labels)[1].tolist() == [0.0, 0.0]
    np.testing.assert_allclose(entropies(labels), [np.log(4), 0.0])


# --- MIG --------------------------------------------------------------------------------

def test_every_first_party_core_is_importable_by_its_metric_name() -> None:
    from disentangle import cores

    first_party = [e for e in get_registry().entries["metric"].values()
                   if e.distribution.startswith("disentangle-bench")]
    assert sorted(e.name for e in first_party) == sorted(cores.__all__)
    assert len(first_party) == 21
    for entry in first_party:
        assert getattr(cores, entry.name) is entry.obj.core


def test_mig_hand_computed() -> None:
    # Factor 0 is copied by code 0; code 1 sees only its parity; factor 1 is seen by no code.
    f0 = np.repeat([0, 1, 2, 3], 4)
    f1 = np.tile([0, 1, 2, 3], 4)
    factors = np.stack([f0, f1], axis=1)
    codes = np.stack([f0, f0 % 2], axis=1).astype(float)
    scores = disentangle.cores.mig(codes, factors, factor_names=("a", "b"))
    # MI(code0, f0) = ln 4, MI(code1, f0) = ln 2: gap ln 2 / ln 4 = 1/2; factor b: gap 0.
    assert scores["mig.a"] == pytest.approx(0.5)
    assert scores["mig.b"] == pytest.approx(0.0)
    assert scores["mig"] == pytest.approx(0.25)


def test_mig_on_the_factors_is_one_and_on_noise_zero() -> None:
    rng = np.random.default_rng(2)
    factors = TinyDataset().sample_factors(5000, rng)
    perfect = disentangle.cores.mig(factors.astype(float), factors)
    assert perfect["mig"] == pytest.approx(1.0, abs=0.01)
    noise = disentangle.cores.mig(rng.normal(size=(5000, 4)), factors)
    assert noise["mig"] == pytest.approx(0.0, abs=0.01)


def test_mig_is_zero_for_a_duplicated_factor() -> None:
    factors = TinyDataset().sample_factors(2000, np.random.default_rng(3))
    codes = np.concatenate([factors, factors[:, :1]], axis=1).astype(float)
    assert disentangle.cores.mig(codes, factors)["mig.factor0"] == 0.0


def test_mig_is_not_the_transposed_matrix() -> None:
    # Two codes both copying factor 0 and three factors: a transposed MI matrix would not
    # even have the right shape for per-factor gaps; with the right one factor 0 has gap 0.
    factors = TinyDataset().sample_factors(2000, np.random.default_rng(4))
    codes = np.stack([factors[:, 0], factors[:, 0]], axis=1).astype(float)
    scores = disentangle.cores.mig(codes, factors)
    assert set(scores) == {"mig", "mig.factor0", "mig.factor1", "mig.factor2"}
    assert scores["mig.factor0"] == 0.0


def test_mig_with_one_code_uses_zero_as_second_best() -> None:
    factors = np.repeat([[0], [1]], 10, axis=0)
    assert disentangle.cores.mig(factors.astype(float), factors)["mig"] == pytest.approx(1.0)


def test_mig_skips_constant_factors_and_refuses_without_codes() -> None:
    factors = np.stack([np.arange(10) % 2, np.zeros(10, dtype=int)], axis=1)
    scores = disentangle.cores.mig(factors[:, :1].astype(float), factors)
    assert set(scores) == {"mig", "mig.factor0"}
    with pytest.raises(NotApplicable):
        disentangle.cores.mig(np.zeros((10, 0)), factors)


def test_mig_sampling_protocol_uses_the_observer() -> None:
    observer = observer_for(identity)
    scores = registered("mig")(observer, np.random.default_rng(5), num_points=3000)
    assert scores["mig"] == pytest.approx(1.0, abs=0.02)
    assert set(scores) == {"mig", "mig.shape", "mig.size", "mig.position"}



# --- categorical accuracy ---------------------------------------------------------------

def accuracy(codes: list[int], factor: list[int], size: int | None = None) -> dict[str, float]:
    return disentangle.cores.categorical_accuracy(
        np.array(codes)[:, None], np.array(factor)[:, None],
        None if size is None else [size], ["f"])


def test_categorical_accuracy_of_a_relabelled_factor_is_one() -> None:
    scores = accuracy([2, 2, 0, 0, 1, 1], [0, 0, 1, 1, 2, 2])
    assert scores == {"categorical_accuracy": 1.0, "categorical_accuracy.f": 1.0,
                      "categorical_accuracy_majority": 1.0}


def test_hungarian_is_one_to_one_and_majority_vote_is_not() -> None:
    # Code 0 covers factor values 0 and 1; codes 1 and 2 split factor value 2.
    # One-to-one: 0->0 (2 right), 1->2 (1 right), 2->1 (0 right) = 3/6.
    # Majority: 0->0 (2), 1->2 (1), 2->2 (1) = 4/6.
    scores = accuracy([0, 0, 0, 0, 1, 2], [0, 0, 1, 1, 2, 2])
    assert scores["categorical_accuracy"] == pytest.approx(3 / 6)
    assert scores["categorical_accuracy_majority"] == pytest.approx(4 / 6)


def test_more_code_values_than_factor_values_use_majority_vote() -> None:
    scores = accuracy([0, 1, 2, 3, 4, 5], [0, 0, 0, 1, 1, 1])
    assert scores["categorical_accuracy"] == 1.0


def test_a_code_missing_values_in_the_sample_still_maps_one_to_one() -> None:
    # The factor has 3 values; the code only shows 0 and 1 but is taken to have 3.
    scores = accuracy([1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 2, 2], size=3)
    assert scores["categorical_accuracy"] == pytest.approx(4 / 6)


def test_best_code_per_factor_and_best_factor_overall() -> None:
    factors = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    codes = np.array([[1, 0], [1, 1], [0, 1], [0, 1]])  # code 0 = not factor 0
    scores = disentangle.cores.categorical_accuracy(codes, factors, [2, 2], ["a", "b"])
    assert scores["categorical_accuracy.a"] == 1.0
    assert scores["categorical_accuracy.b"] == pytest.approx(3 / 4)
    assert scores["categorical_accuracy"] == 1.0


def test_categorical_accuracy_needs_a_categorical_code_and_factor() -> None:
    with pytest.raises(NotApplicable, match="no categorical code"):
        registered("categorical_accuracy")(observer_for(identity), np.random.default_rng(0))

    class NoCategories(TinyDataset):
        categorical_factors = ()

    observer = Observer(CodeModel(identity, lambda f: f[:, :1]), NoCategories())
    with pytest.raises(NotApplicable, match="no categorical factor"):
        registered("categorical_accuracy")(observer, np.random.default_rng(0))
    with pytest.raises(ValueError, match="non-negative"):
        accuracy([-1, 0], [0, 1])


def test_categorical_accuracy_sampling_protocol() -> None:
    observer = observer_for(identity, lambda f: (f[:, :1] + 1) % 3)
    scores = registered("categorical_accuracy")(observer, np.random.default_rng(6),
                                                num_points=500)
    assert scores == {"categorical_accuracy": 1.0, "categorical_accuracy.shape": 1.0,
                      "categorical_accuracy_majority": 1.0}
