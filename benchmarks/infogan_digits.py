"""InfoGAN on scikit-learn's 8x8 digits: does the 10-way code find the digits without labels?

Runs exactly what ``disentangle run infogan --dataset digits --seed S`` runs (the default
schedule and the ``digits`` arch preset, CPU), once per seed, into a throw-away MLflow store.
For each seed it reports the registered ``categorical_accuracy`` metric at the end (Q's
10-way code on real digits, one-to-one Hungarian mapping; majority vote alongside), the wall
time of training plus evaluation, and how fast the categorical mutual-information bound
H(c) - CE (``train/mi_bound_categorical``, logged as a 20-step mean) approaches its ceiling
H(c) = ln 10. The bar to clear is k-means on the same pixels (benchmarks/digits_kmeans.py,
0.793). Run from the repository root::

    python benchmarks/infogan_digits.py [--seeds 3] [--threads 1] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import math

from runs import run_seeds, seed_arguments, summarise

#: steps at which the bound is shown (the end of each 20-step logging window)
BOUND_STEPS = (20, 100, 200, 500, 1000)


def main() -> None:
    args, overrides = seed_arguments(__doc__.splitlines()[0])
    ceiling = math.log(10)
    rows = []
    for seed, row in run_seeds("infogan", "digits", args, overrides, ["mi_bound_categorical"]):
        rows.append(row)
        bound = row["history"]["mi_bound_categorical"]
        near = next((s for s, v in sorted(bound.items()) if v >= 0.95 * ceiling), None)
        shown = ", ".join(f"{s}: {bound[s]:.3f}" for s in BOUND_STEPS if s in bound)
        print(f"seed {seed}: categorical_accuracy {row['categorical_accuracy']:.4f} "
              f"(majority {row['categorical_accuracy_majority']:.4f}), "
              f"{row['steps']} steps, wall {row['wall']:.0f} s", flush=True)
        print(f"  MI bound H(c) - CE (ceiling ln 10 = {ceiling:.3f}) by step: {shown}; "
              f"final {bound[max(bound)]:.3f}; first >= 95% of the ceiling at step {near}",
              flush=True)
    summarise(rows, ["categorical_accuracy", "categorical_accuracy_majority", "wall"])


if __name__ == "__main__":
    main()
