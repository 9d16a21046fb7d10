"""Baseline for the ``digits`` dataset: k-means on raw pixels, scored as clustering accuracy.

KMeans with 10 clusters (``n_init=10``) on the 1,797 raw 64-pixel images, one run per seed;
each cluster is matched one-to-one to a digit with the Hungarian method (scipy's
``linear_sum_assignment``) and the accuracy is the share of images whose cluster maps to
their digit. A categorical code that learns nothing about the digits should not be read
as doing well unless it beats this number. Run from the repository root::

    python benchmarks/digits_kmeans.py [--seeds 5]
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

import disentangle


def hungarian_accuracy(clusters: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of the best one-to-one mapping of clusters to labels."""
    counts = np.zeros((clusters.max() + 1, labels.max() + 1), dtype=np.int64)
    np.add.at(counts, (clusters, labels), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return counts[rows, cols].sum() / len(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="k-means runs, seeds 0..N-1")
    args = parser.parse_args()
    dataset = disentangle.load_dataset("digits")
    pixels = dataset.pixels.reshape(len(dataset), -1).astype(np.float64)
    labels = dataset.labels
    scores = []
    with threadpool_limits(1):
        for seed in range(args.seeds):
            clusters = KMeans(n_clusters=10, n_init=10, random_state=seed).fit_predict(pixels)
            scores.append(hungarian_accuracy(clusters, labels))
            print(f"seed {seed}: accuracy {scores[-1]:.4f}")
    print(f"k-means (10 clusters, n_init=10) on {len(labels)} digits, {args.seeds} seeds: "
          f"accuracy mean {np.mean(scores):.4f}, std {np.std(scores, ddof=1):.4f} (ddof=1)")


if __name__ == "__main__":
    main()
