"""InfoGAN on dSprites: MIG and the shape code's accuracy at a given schedule.

Runs what ``disentangle run infogan --dataset dsprites --seed S --set categorical_sizes=3
[--steps N]`` runs (the ``dsprites`` arch preset: InfoGAN-CR's networks and code sizes, plus
a 3-way categorical code for the shape factor, which the preset itself leaves out), once per
seed on the CPU, into a throw-away MLflow store, and reports the registered ``mig`` and
``categorical_accuracy`` (the 3-way code against ``shape``, Hungarian mapping) at the end,
with wall times. Run from the repository root::

    python benchmarks/infogan_dsprites.py [--seeds 3] [--steps 0] [--set KEY=VALUE ...]
"""

from __future__ import annotations

from runs import run_seeds, seed_arguments, summarise


def main() -> None:
    args, overrides = seed_arguments(__doc__.splitlines()[0])
    overrides.setdefault("categorical_sizes", "3")
    rows = []
    for seed, row in run_seeds("infogan", "dsprites", args, overrides):
        rows.append(row)
        print(f"seed {seed}: mig {row['mig']:.4f}, categorical_accuracy (shape) "
              f"{row['categorical_accuracy.shape']:.4f}, {row['steps']} steps, "
              f"wall {row['wall']:.0f} s", flush=True)
    summarise(rows, ["mig", "categorical_accuracy.shape", "wall"])


if __name__ == "__main__":
    main()
