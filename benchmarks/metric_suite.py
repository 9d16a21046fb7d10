"""The whole metric suite on one trained dSprites model, against the reference protocol's cost.

Trains a short InfoGAN run on dSprites with the runner (or loads a saved model state), then:

1. measures the renderer's and the encoder's throughput at the reference protocol's batch
   sizes (16 for the plain samples, 64 for BetaVAE / FactorVAE batches) and at 1,024;
   ours is the evaluation's default for the device (64 on a CPU);
2. scores the model with every metric through :func:`disentangle.evaluation.evaluate`
   (whole factor grid encoded once, every sample answered by lookup), timing rendering,
   encoding and each metric;
3. counts the reference protocol's encoder images from its settings, and estimates its cost
   on this machine: those images through the same encoder at its batch sizes, plus the
   same model fits (its DCI gradient boosting is the classifier of this suite's ``dci``, fitted
   once more on the same points by scikit-learn itself, its fits one after another as the
   reference runs them, so that time is measured, not estimated; our ``dci``'s agreement
   with it is printed);
4. says what the time goes to, and the grid encoding's images/s against the bare forward
   pass; times the newer metrics on the same encodings;
5. checks that the sample path (encode only the draws) gives the same scores as the grid
   path for a few metrics, and reports ``dci_fast``'s deviation from ``dci``.

Run from the repository root (long: tens of minutes on a 2-core CPU)::

    nice python benchmarks/metric_suite.py [--steps 500] [--out benchmarks/results/metric_suite.txt]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import runs
import torch

from disentangle.config import RunConfig
from disentangle.evaluation import Observer, evaluate, evaluation_rng
from disentangle.registry import get_registry

SUITE = ("mig", "factor_vae", "beta_vae", "dci", "dci_fast", "sap", "modularity", "irs",
         "gaussian_total_correlation", "gaussian_wasserstein_correlation",
         "pairwise_mutual_info", "categorical_accuracy")
#: the reference protocol's metrics (its three unsupervised scores share one sample, so
#: one of them stands for all three) and the encoder batch size it uses for each
REFERENCE = {"mig": 16, "factor_vae": 64, "beta_vae": 64, "dci": 16, "sap": 16,
             "modularity": 16, "irs": 16, "gaussian_total_correlation": 16}
#: the metrics after the reference protocol's, timed apart from the suite
NEWER = ("mig_sup", "dcimig", "jemmig", "z_min", "z_max", "infomec", "dci_es")
#: metrics compared between the sample path and the grid path
CHECKED = ("mig", "irs", "gaussian_total_correlation")


class Timed:
    """Wraps a function and adds up the seconds spent in it."""

    def __init__(self, function: Callable):
        self.function, self.seconds = function, 0.0

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.function(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


def train(steps: int, workdir: Path):
    """A short InfoGAN run on dSprites (no evaluation): its dataset and trained model."""
    config = RunConfig(model="infogan", dataset="dsprites", steps=steps, metrics=())
    run, _, _, _ = runs.train(config, {}, f"sqlite:///{workdir / 'mlflow.db'}")
    return run.plan.dataset, run.model


def throughput(dataset, model, rows: int = 4096) -> dict[str, float]:
    """Seconds per image: rendering, and encoding at batch sizes 16, 64 and 1024."""
    factors = dataset.sample_factors(rows, np.random.default_rng(0))
    start = time.perf_counter()
    images = dataset.images(factors)
    rates = {"render": (time.perf_counter() - start) / rows}
    model.eval()
    for batch in (16, 64, 1024):
        start = time.perf_counter()
        with torch.no_grad():
            for i in range(0, rows, batch):
                model.encode(images[i:i + batch])
        rates[f"encode@{batch}"] = (time.perf_counter() - start) / rows
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500, help="InfoGAN training steps")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/metric_suite.txt"))
    args = parser.parse_args()
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    torch.manual_seed(0)
    registry = get_registry()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        dataset, model = train(args.steps, Path(tmp))
        say(f"model: InfoGAN on dSprites, {args.steps} training steps "
            f"({time.perf_counter() - start:.0f} s); torch threads {torch.get_num_threads()}")
    codes = model.encode(dataset.images(dataset.sample_factors(2, np.random.default_rng(0))))
    say(f"codes: {codes.continuous.shape[1]} continuous + {codes.categorical.shape[1]} "
        f"categorical; factor grid {dataset.num_combinations:,} combinations")

    rates = throughput(dataset, model)
    say("\nthroughput (images/s): " + ", ".join(f"{k} {1 / v:,.0f}" for k, v in rates.items()))

    render, encode = Timed(dataset.images), Timed(model.encode)
    dataset.images, model.encode = render, encode  # instance attributes shadow the methods
    observer = Observer(model, dataset, progress=True)
    start = time.perf_counter()
    suite = evaluate(model, dataset, registry.metrics(SUITE), seed=0, observer=observer)
    wall = time.perf_counter() - start
    say(f"\n## our suite: evaluate() with {len(SUITE)} metrics, encoder batch "
        f"{observer.batch_size}")
    say(f"wall {wall:,.0f} s = rendering {render.seconds:,.0f} s + encoding "
        f"{encode.seconds:,.0f} s + the rest {wall - render.seconds - encode.seconds:,.0f} s")
    say(f"rows requested {suite.rows_requested:,}; images encoded {suite.images_encoded:,} "
        f"(whole grid: {suite.grid})")
    for name, seconds in suite.seconds.items():
        say(f"  {name:34s} {seconds:8.1f} s")
    say("\nscores:")
    for key, value in suite.scores.items():
        say(f"  {key:44s} {value:.4f}")
    for key, why in suite.skipped.items():
        say(f"  {key} skipped: {why}")

    say("\n## the reference protocol (unsupervised_study_v1 settings)")
    ref_images, ref_encode = 0, 0.0
    for name, batch in REFERENCE.items():
        count = registry.metric(name).images_requested(dataset)
        ref_images += count
        ref_encode += count * rates[f"encode@{batch}"]
        say(f"  {name:28s} {count:>10,} images, encoder batch {batch}")
    # the reference's DCI: scikit-learn's fits on the suite's dci draws (same rng), one
    # after another as the reference runs them
    start = time.perf_counter()
    reference = registry.metric("dci_sklearn")(observer, evaluation_rng(0, SUITE.index("dci")),
                                              jobs=1)
    dci = time.perf_counter() - start
    fits = sum(suite.seconds[m] for m in REFERENCE if m != "dci")
    ref_total = ref_encode + dci + fits
    say(f"total {ref_images:,} encoder images ({ref_images / suite.images_encoded:.1f}x ours)")
    say(f"estimated cost here: encoding {ref_encode:,.0f} s (same encoder, its batch sizes) "
        f"+ DCI gradient boosting {dci:,.0f} s (measured: scikit-learn's fits one after "
        f"another) + other metrics {fits:,.0f} s (ours) = {ref_total:,.0f} s")
    say(f"our `dci` (scikit-learn's trees grown with shared work, fits on "
        f"{os.cpu_count()} processes): {suite.seconds['dci']:,.0f} s; against scikit-learn's "
        "fits on the same points:")
    for part in ("", ".completeness", ".informativeness_train", ".informativeness_test"):
        ours, theirs = suite.scores[f"dci{part}"], reference[f"dci_sklearn{part}"]
        say(f"  dci{part:24s} ours {ours:.4f}  sklearn {theirs:.4f}  "
            f"difference {ours - theirs:+.4f}")

    fast = suite.seconds["dci_fast"]
    # the suite with one of the two DCIs
    ours_exact, ours_fast = wall - fast, wall - suite.seconds["dci"]
    ref_render = ref_images * rates["render"]
    say("\n## speed-up (the reference protocol's cost / ours)")
    say("images from memory (the reference reads the official array; ours less rendering):")
    say(f"  our suite with exact dci: {ref_total / (ours_exact - render.seconds):6.1f}x   "
        f"with dci_fast: {ref_total / (ours_fast - render.seconds):6.1f}x")
    say("both rendering every image procedurally:")
    say(f"  our suite with exact dci: {(ref_total + ref_render) / ours_exact:6.1f}x   "
        f"with dci_fast: {(ref_total + ref_render) / ours_fast:6.1f}x")

    say("\n## dci_fast against dci (same points)")
    for part in ("", ".completeness", ".informativeness_train", ".informativeness_test"):
        exact, fast = suite.scores[f"dci{part}"], suite.scores[f"dci_fast{part}"]
        say(f"  dci{part:24s} exact {exact:.4f}  fast {fast:.4f}  deviation {fast - exact:+.4f}")

    say("\n## what the suite's time goes to")
    costs = {"rendering": render.seconds, "encoding": encode.seconds,
             **{name: suite.seconds[name] for name in SUITE if name in suite.seconds}}
    for name, seconds in sorted(costs.items(), key=lambda item: -item[1])[:5]:
        say(f"  {name:34s} {seconds:8.1f} s  ({seconds / wall:5.1%} of the wall time)")
    grid_rate = dataset.num_combinations / suite.seconds["encode_grid"]
    best = max((key for key in rates if key.startswith("encode@")), key=lambda k: 1 / rates[k])
    say(f"grid encoding, rendering included: {grid_rate:,.0f} images/s; the bare forward pass "
        f"at its best batch ({best}, {torch.get_num_threads()} threads): "
        f"{1 / rates[best]:,.0f} images/s, rendering excluded")

    say("\n## the newer metrics on the same model (grid already encoded)")
    newer = evaluate(model, dataset, registry.metrics(NEWER), seed=0, observer=observer)
    for name in NEWER:
        if name in newer.skipped:
            say(f"  {name:12s} skipped: {newer.skipped[name]}")
        else:
            say(f"  {name:12s} {newer.seconds[name]:8.1f} s   {name} = {newer.scores[name]:.4f}")

    say(f"\n## sample path against grid path ({', '.join(CHECKED)})")
    checked = registry.metrics(CHECKED)
    grid_scores = evaluate(model, dataset, checked, seed=0, observer=observer).scores
    sampled = evaluate(model, dataset, checked, seed=0, grid=False)
    diff = max(abs(grid_scores[k] - sampled.scores[k]) for k in grid_scores)
    say(f"sample path encoded {sampled.images_encoded:,} images; largest score difference "
        f"{diff:.2e} over {len(grid_scores)} scores")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
