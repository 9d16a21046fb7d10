"""The exact DCI boosting grows scikit-learn's trees: same splits, leaves and importances."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier

from disentangle import cores
from disentangle_plugins.metrics import boosting


def _level_order(tree, depth: int = 3) -> list[int]:
    """scikit-learn's split features in level order, -1 for no split (as ours are kept)."""
    features, frontier = [], [0]
    for _ in range(depth):
        following = []
        for node in frontier:
            if node < 0 or tree.feature[node] < 0:
                features.append(-1)
                following += [-1, -1]
            else:
                features.append(int(tree.feature[node]))
                following += [tree.children_left[node], tree.children_right[node]]
        frontier = following
    return features


def _data(n: int, d: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    codes = rng.normal(size=(n, d))
    codes[:, 0] += 0.3 * labels
    return codes, labels


def test_two_class_trees_are_sklearns_to_rounding():
    codes, labels = _data(600, 4, 2, 0)
    ours = boosting.fit(codes, labels, stages=30)
    theirs = GradientBoostingClassifier(n_estimators=30, random_state=0).fit(codes, labels)
    assert np.abs(ours.raw_predict(codes)[:, 0] - theirs.decision_function(codes)).max() < 1e-9
    assert np.array_equal(ours.predict(codes), theirs.predict(codes))
    assert list(ours.features[0][0]) == _level_order(theirs.estimators_[0, 0].tree_)


def test_many_class_trees_agree_with_sklearns():
    """With many classes a stage's residuals start two-valued, so splits that cut off a few
    samples of one class tie across features; scikit-learn breaks those ties by its random
    state, and ours by its seed. The roots must be the same, and ours must differ from
    scikit-learn's no more than scikit-learn's reruns differ from each other."""
    codes, labels = _data(2000, 6, 10, 3)
    ours = boosting.fit(codes, labels, stages=30)
    theirs, rerun = (GradientBoostingClassifier(n_estimators=30, random_state=state)
                     .fit(codes, labels) for state in (0, 1))
    roots = [(int(t.tree_.feature[0]), t.tree_.threshold[0]) for t in theirs.estimators_[0]]
    assert list(zip(ours.features[0][:, 0].tolist(), ours.thresholds[0][:, 0])) == roots
    spread = np.mean(rerun.predict(codes) == theirs.predict(codes))
    assert np.mean(ours.predict(codes) == theirs.predict(codes)) > spread - 0.02
    importance_spread = np.abs(rerun.feature_importances_ - theirs.feature_importances_).max()
    assert np.abs(ours.importances - theirs.feature_importances_).max() < 2 * importance_spread


def test_repeated_values_split_only_between_distinct_values():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 1500)
    codes = np.column_stack([labels + rng.integers(0, 2, 1500),  # integers with many repeats
                             rng.normal(size=1500).round(1)])
    ours = boosting.fit(codes, labels, stages=20)
    theirs = GradientBoostingClassifier(n_estimators=20, random_state=0).fit(codes, labels)
    assert np.abs(ours.raw_predict(codes) - theirs.decision_function(codes)).max() < 1e-9
    split = ours.thresholds[0][ours.features[0] == 0]
    assert set(np.round(split * 2).astype(int).tolist()) <= {1, 3, 5}  # midpoints only


def test_constant_code_gets_no_importance_and_duplicates_share_it():
    codes, labels = _data(1500, 3, 4, 5)
    codes = np.column_stack([codes, np.full(1500, 2.5), codes[:, 0]])  # constant, duplicate
    ours = boosting.fit(codes, labels, stages=40, seed=0)
    assert ours.importances[3] == 0.0
    shared = ours.importances[[0, 4]]
    assert shared.min() > 0.25 * shared.sum()  # tied splits go either way, at random
    theirs = GradientBoostingClassifier(n_estimators=40, random_state=0).fit(codes, labels)
    assert abs(shared.sum() - theirs.feature_importances_[[0, 4]].sum()) < 0.01


def test_single_class_is_refused():
    with pytest.raises(ValueError, match="two classes"):
        boosting.fit(np.zeros((10, 2)), np.zeros(10))


def _representations(rng: np.random.Generator, factors: np.ndarray) -> dict[str, np.ndarray]:
    noisy = np.column_stack([factors + 0.2 * rng.normal(size=factors.shape),
                             rng.normal(size=len(factors))])
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return {"factors plus noise": noisy, "rotated": noisy @ rotation,
            "duplicated": np.repeat(noisy, 2, axis=1),
            "constant": np.column_stack([noisy, np.full(len(noisy), 0.5)])}


@pytest.mark.parametrize("name", ["factors plus noise", "rotated", "duplicated", "constant"])
def test_dci_agrees_with_dci_sklearn(name):
    rng = np.random.default_rng(0)
    factors = rng.integers(0, [3, 5], size=(900, 2))
    codes = _representations(rng, factors)[name]
    ours = cores.dci(codes[:600], factors[:600], codes[600:], factors[600:], jobs=1)
    theirs = cores.dci_sklearn(codes[:600], factors[:600], codes[600:], factors[600:], jobs=1)
    for key, value in ours.items():
        assert abs(value - theirs[key.replace("dci", "dci_sklearn", 1)]) < 0.01, key
