"""Gradient-boosted trees grown as scikit-learn's ``GradientBoostingClassifier()`` grows them.

DCI's reference classifier is scikit-learn's gradient boosting with its defaults: 100
stages, learning rate 0.1, one depth-3 regression tree per class and stage (one per stage
for two classes), at least one sample per leaf, no subsampling. This module grows the same
trees, with every rule of scikit-learn kept:

* the initial raw prediction is the link of the class priors (clipped to ``[eps, 1-eps]``):
  the log-odds for two classes, ``log p - mean(log p)`` for more;
* each stage's trees fit the negative gradient of the log loss, ``y - p`` per class, with
  ``p`` the softmax (sigmoid for two classes) of the raw predictions at the stage's start;
* codes are compared as float32, as scikit-learn's trees store them. A node is split where
  the squared-error reduction is largest, only between consecutive sorted values more than
  ``1e-7`` apart (float32 arithmetic), at the midpoint of the two values; a node whose
  residuals' variance is at most float64's eps stays a leaf. The squared-error choice is
  also friedman_mse's (older scikit-learn's default): for a fixed node the two criteria
  are proportional;
* each leaf then gets the Newton step of the log loss: mean residual over mean ``p (1-p)``,
  times ``(K-1)/K`` for ``K > 2`` classes, 0 where the denominator is below ``1e-150``;
* feature importances are each tree's impurity decreases (node size times variance,
  minus the children's), over the sample count, averaged over every tree that has a split,
  normalised to sum to 1.

What differs is how the work is shared. Every code column is sorted once for the whole
fit, not once per node; each level of all of a stage's trees is searched at once, every
candidate split of every tree, feature and node in a few array operations; no Python
loop runs over samples. Where two features tie for a node's best split (duplicated codes),
scikit-learn takes the first it visits in a random feature order, so every tied feature is
equally likely; here the tie is broken by a draw from ``seed`` with the same odds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple

import numpy as np

#: scikit-learn's tolerance between float32 feature values that may be split apart
_FEATURE_THRESHOLD = np.float32(1e-7)
#: a node whose residuals' variance is at most this stays a leaf
_EPSILON = np.finfo(np.float64).eps
#: class trees grown together: enough to share the work, few enough to stay in cache
_TREES_AT_ONCE = 2


@dataclass
class BoostedTrees:
    """A fitted ensemble: the class labels, the initial raw prediction, and per stage the
    split feature and threshold of every node of every class's tree, level by level, and
    the leaf values (``-1`` features mark nodes that are not split)."""

    classes: np.ndarray
    initial: np.ndarray
    learning_rate: float
    depth: int
    features: list[np.ndarray] = field(default_factory=list)  # per stage [T, 2^depth - 1]
    thresholds: list[np.ndarray] = field(default_factory=list)  # per stage [T, 2^depth - 1]
    leaves: list[np.ndarray] = field(default_factory=list)  # per stage [T, 2^depth]
    importances: np.ndarray | None = None

    def raw_predict(self, codes: np.ndarray) -> np.ndarray:
        """Raw predictions ``[N, T]`` (one column for two classes) of codes ``[N, d]``."""
        values = np.asarray(codes, dtype=np.float32)
        raw = np.broadcast_to(self.initial, (len(values), len(self.initial))).copy()
        for features, thresholds, leaves in zip(self.features, self.thresholds, self.leaves):
            raw += self.learning_rate * _apply(values, features, thresholds, leaves,
                                               self.depth).T
        return raw

    def predict(self, codes: np.ndarray) -> np.ndarray:
        """The class of each row of ``codes``, decided as scikit-learn decides it."""
        raw = self.raw_predict(codes)
        if raw.shape[1] == 1:
            return self.classes[(raw[:, 0] >= 0).astype(int)]
        return self.classes[np.argmax(raw, axis=1)]

    def score(self, codes: np.ndarray, labels: np.ndarray) -> float:
        """Mean accuracy on ``codes`` and their ``labels``."""
        return float(np.mean(self.predict(codes) == np.asarray(labels)))


def _apply(values: np.ndarray, features: np.ndarray, thresholds: np.ndarray,
           leaves: np.ndarray, depth: int) -> np.ndarray:
    """Leaf values ``[T, N]`` that one stage's ``T`` trees give float32 codes ``[N, d]``."""
    trees = np.arange(len(features))[:, None]
    rows = np.arange(len(values))[None, :]
    node = np.zeros((len(features), len(values)), dtype=np.int64)
    for level in range(depth):
        heap = (1 << level) - 1 + node  # index of the node in the level-order arrays
        feature = features[trees, heap]
        split = feature >= 0
        right = split & (values[rows, np.maximum(feature, 0)] > thresholds[trees, heap])
        node = 2 * node + right
    return leaves[trees, node]


class _Columns(NamedTuple):
    """The float32 codes ``[N, d]`` and what every tree of a fit reuses: each column's
    sort order and sorted values ``[d, N]``, and whether all of a column's sorted values
    are more than the split tolerance apart (then any two of a node's samples can be split
    apart, and only the other columns need their gaps checked)."""

    values: np.ndarray
    order: np.ndarray
    sorted_values: np.ndarray
    spaced: np.ndarray


def _columns(values: np.ndarray) -> _Columns:
    order = np.argsort(values, axis=0, kind="stable").T  # [d, N]
    sorted_values = np.take_along_axis(values, order.T, axis=0).T
    spaced = (sorted_values[:, 1:] > sorted_values[:, :-1] + _FEATURE_THRESHOLD).all(axis=1)
    return _Columns(values, order, sorted_values, spaced)


def fit(codes: np.ndarray, labels: np.ndarray, stages: int = 100, learning_rate: float = 0.1,
        depth: int = 3, seed: int = 0) -> BoostedTrees:
    """Fit the boosted trees to codes ``[N, d]`` and class labels ``[N]`` (two or more)."""
    values = np.asarray(codes, dtype=np.float32)
    classes, y = np.unique(np.asarray(labels), return_inverse=True)
    y = y.reshape(-1)
    n, d = values.shape
    if len(classes) < 2:
        raise ValueError("boosting needs at least two classes")
    rng = np.random.default_rng(seed)
    prior = np.clip(np.bincount(y) / n, _EPSILON, 1 - _EPSILON)
    if len(classes) == 2:
        initial = np.log(prior[1:] / (1 - prior[1:]))
        targets = (y == 1)[None, :].astype(np.float64)
    else:
        initial = np.log(prior) - np.log(prior).mean()
        targets = (y[None, :] == np.arange(len(classes))[:, None]).astype(np.float64)
    trees = len(targets)
    model = BoostedTrees(classes, initial, learning_rate, depth)
    columns = _columns(values)
    raw = np.broadcast_to(initial[:, None], (trees, n)).copy()  # [T, N]
    importance_sum, relevant = np.zeros(d), 0
    for _ in range(stages):
        if trees == 1:
            probability = 1 / (1 + np.exp(-raw))
        else:
            shifted = np.exp(raw - raw.max(axis=0))
            probability = shifted / shifted.sum(axis=0)
        residual = targets - probability
        # a few trees at a time, so that each level's arrays stay in the processor's caches
        grown = [_grow(columns, residual[first:first + _TREES_AT_ONCE], depth, rng)
                 for first in range(0, trees, _TREES_AT_ONCE)]
        node, features, thresholds, gains = (np.concatenate(part) for part in zip(*grown))
        leaves = _newton_leaves(residual, probability, node, depth, len(classes))
        raw += learning_rate * np.take_along_axis(leaves, node, axis=1)
        model.features.append(features)
        model.thresholds.append(thresholds)
        model.leaves.append(leaves)
        has_split = features[:, 0] >= 0
        importance_sum += gains[has_split].sum(axis=0) / n
        relevant += int(has_split.sum())
    total = importance_sum.sum()
    model.importances = importance_sum / total if relevant and total > 0 else np.zeros(d)
    return model


def _newton_leaves(residual: np.ndarray, probability: np.ndarray, node: np.ndarray,
                   depth: int, classes: int) -> np.ndarray:
    """Leaf values ``[T, 2^depth]``: the log loss's Newton step on each leaf's samples."""
    trees, leaves = len(residual), 1 << depth
    key = (node + leaves * np.arange(trees)[:, None]).ravel()
    count = np.bincount(key, minlength=trees * leaves)
    numerator = np.bincount(key, residual.ravel(), trees * leaves)
    hessian = (probability * (1 - probability)).ravel()
    denominator = np.bincount(key, hessian, trees * leaves)
    with np.errstate(divide="ignore", invalid="ignore"):
        numerator, denominator = numerator / count, denominator / count
        if classes > 2:
            numerator = numerator * ((classes - 1) / classes)
        value = np.where(np.abs(denominator) < 1e-150, 0.0, numerator / denominator)
    return np.where(count > 0, value, 0.0).reshape(trees, leaves)


def _spread(count: np.ndarray, per_node: np.ndarray) -> np.ndarray:
    """A value per (tree, node) ``[T, width]`` repeated over the node's positions, for
    samples laid out node by node with ``count`` ``[T, width]`` samples per node."""
    return np.repeat(np.broadcast_to(per_node, count.shape).ravel(),
                     count.ravel()).reshape(len(count), -1)


def _grow(columns: _Columns, residual: np.ndarray, depth: int, rng: np.random.Generator
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Grow one stage's ``T`` trees on ``residual`` ``[T, N]`` level by level.

    Returns each sample's leaf ``[T, N]`` (as a path number in ``[0, 2^depth)``: a sample
    of a node that was not split goes left), the split feature (``-1``: none) and threshold
    of every node ``[T, 2^depth - 1]`` in level order, and each tree's impurity decrease
    per feature ``[T, d]``.
    """
    values, order, sorted_values, spaced = columns
    trees, n = residual.shape
    d = values.shape[1]
    internal = (1 << depth) - 1
    features = np.full((trees, internal), -1, dtype=np.int64)
    thresholds = np.zeros((trees, internal))
    gains = np.zeros((trees, d))
    node = np.zeros((trees, n), dtype=np.int64)
    alive = np.ones((trees, 1), dtype=bool)  # whether each node of the level may split
    flat_order = order.ravel()
    tree_index = np.arange(trees)[:, None]
    row_offset = (np.arange(trees * d) * n).reshape(trees, d, 1)
    squared = residual**2
    position = np.arange(n)[None, :]
    for level in range(depth):
        width = 1 << level
        key = (node + width * tree_index).ravel()
        count = np.bincount(key, minlength=trees * width).reshape(trees, width)
        total = np.bincount(key, residual.ravel(), trees * width).reshape(trees, width)
        square_sum = np.bincount(key, squared.ravel(), trees * width).reshape(trees, width)
        with np.errstate(divide="ignore", invalid="ignore"):
            impurity = square_sum / count - (total / count) ** 2
        alive &= (count >= 2) & (impurity > _EPSILON)
        if not alive.any():
            break
        # every (tree, feature) row holds the samples node by node, each node's in value order
        if level == 0:
            within = np.broadcast_to(np.arange(d * n).reshape(1, d, n), (trees, d, n))
            samples = np.broadcast_to(order[None], (trees, d, n))
        else:
            along = np.take(node, flat_order, axis=1).reshape(trees, d, n).astype(np.int8)
            within = np.argsort(along, axis=2, kind="stable")
            within += (np.arange(d) * n)[None, :, None]
            samples = flat_order.take(within)
        # node boundaries are the same for every feature of one tree
        start = np.zeros((trees, width), dtype=np.int64)
        np.cumsum(count[:, :-1], axis=1, out=start[:, 1:])
        spread = partial(_spread, count)
        left_count = position - spread(start) + 1  # [T, N]
        node_count = spread(count)
        node_total = spread(total)
        # prefix sums restarted at each node, summed from the node's first sample as
        # scikit-learn sums them: splits that tie there tie here too, to the last bit
        ordered_residual = residual.take(samples + n * tree_index[..., None])
        if width == 1:
            gain = np.cumsum(ordered_residual, axis=2)
        else:
            gain = np.empty_like(ordered_residual)
            nodes = count > 0
            for tree, first_sample, size in zip(np.nonzero(nodes)[0], start[nodes],
                                                count[nodes]):
                block = slice(first_sample, first_sample + size)
                np.cumsum(ordered_residual[tree, :, block], axis=1, out=gain[tree, :, block])
        # squared-error proxy (W s - w S)^2 / (w (W - w)), the split criterion up to the
        # node's constant factor W
        gain *= node_count[:, None, :]
        gain -= (left_count * node_total)[:, None, :]
        np.square(gain, out=gain)
        with np.errstate(divide="ignore"):
            scale = 1.0 / (left_count * (node_count - left_count)).astype(np.float64)
        scale[(left_count == node_count) | ~spread(alive)] = -1.0
        gain *= scale[:, None, :]
        if not spaced.all():
            ordered = sorted_values.ravel().take(within[:, ~spaced])
            close = np.ones(ordered.shape, dtype=bool)
            close[..., :-1] = ordered[..., 1:] <= ordered[..., :-1] + _FEATURE_THRESHOLD
            sub = gain[:, ~spaced]
            sub[close] = -1.0
            gain[:, ~spaced] = sub
        # the best candidate of each (tree, feature, node), then of each (tree, node)
        flat_start = np.minimum(start[:, None, :] + row_offset, gain.size - 1)
        best = np.maximum.reduceat(gain.ravel(), flat_start.ravel()).reshape(trees, d, width)
        top = best.max(axis=1)  # [T, width]
        splits = alive & (top >= 0)
        tied = best == top[:, None, :]
        ties = tied.sum(axis=1)  # [T, width]
        pick = np.minimum((rng.random((trees, width)) * ties).astype(np.int64),
                          np.maximum(ties - 1, 0))
        chosen = np.argmax(np.cumsum(tied, axis=1) > pick[:, None, :], axis=1)  # [T, width]
        # the first position in the chosen feature's row reaching the node's best gain
        row = gain.ravel().take((tree_index * d + spread(chosen)) * n + position)
        hit = row == spread(top)
        first = np.minimum.reduceat(np.where(hit, position, n).ravel(),
                                    np.minimum(start + n * tree_index, hit.size - 1).ravel()
                                    ).reshape(trees, width)
        first = np.minimum(first, n - 2)
        at = (tree_index * d + chosen) * n + first  # [T, width] in the flat rows
        low = sorted_values.ravel()[within.ravel()[at]]
        high = sorted_values.ravel()[within.ravel()[at + 1]]
        threshold = low.astype(np.float64) / 2.0 + high.astype(np.float64) / 2.0
        heap = (1 << level) - 1 + np.arange(width)
        features[:, heap] = np.where(splits, chosen, -1)
        thresholds[:, heap] = np.where(splits, threshold, 0.0)
        # children's sums, for the impurity decrease
        node_key = node + width * tree_index
        split_feature = np.where(splits, chosen, 0).ravel().take(node_key)
        goes_right = (values.ravel().take(position * d + split_feature)
                      > threshold.ravel().take(node_key))
        goes_right &= splits.ravel().take(node_key)
        child = 2 * node + goes_right
        child_key = (child + 2 * width * tree_index).ravel()
        child_count = np.bincount(child_key, minlength=trees * 2 * width).reshape(trees, width, 2)
        child_total = np.bincount(child_key, residual.ravel(),
                                  trees * 2 * width).reshape(trees, width, 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            decrease = (child_total**2 / child_count).sum(axis=2) - total**2 / count
        decrease = np.where(splits, decrease, 0.0)
        np.add.at(gains, (np.broadcast_to(tree_index, chosen.shape), chosen), decrease)
        node = child
        alive = np.repeat(splits, 2, axis=1)
    else:
        return node, features, thresholds, gains
    return node << (depth - level), features, thresholds, gains
