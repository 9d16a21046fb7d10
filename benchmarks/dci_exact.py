"""Exact DCI against scikit-learn's: agreement beside scikit-learn's own rerun spread, and speed.

``dci`` grows the trees of scikit-learn's ``GradientBoostingClassifier()`` with shared work;
``dci_sklearn`` has scikit-learn fit them. Where splits tie, scikit-learn picks by its
random state, so its DCI varies a little between reruns. This script:

1. times both on the reference protocol's 10,000 training and 5,000 test points, on one
   core, the factors' fits interleaved (sklearn's, then ours, factor by factor);
2. scores five representations of dSprites' factors (sizes 3, 6, 40, 32, 32) with
   ``dci_sklearn`` under random states 0, 1, 2 and with ``dci`` under seeds 0, 1, 2, and
   prints each score's scikit-learn mean and spread (max - min over its reruns) beside
   ``dci``'s mean and its distance from scikit-learn's mean. The representations: the
   factors plus noise, the same rotated, with every code duplicated, with constant codes
   added, and the codes of a briefly trained InfoGAN.

Run from the repository root (about 20 minutes on a 2-core CPU)::

    python benchmarks/dci_exact.py [--points 2000] [--out benchmarks/results/dci_exact.txt]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import runs
import torch
from threadpoolctl import threadpool_limits

from disentangle import cores
from disentangle.config import RunConfig
from disentangle_plugins.metrics import dci as dci_plugin

SIZES = (3, 6, 40, 32, 32)
SEEDS = (0, 1, 2)
PARTS = ("", ".completeness", ".informativeness_train", ".informativeness_test")


def factors_plus_noise(factors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each factor scaled to [0, 1] plus noise (sd 0.05), and five pure-noise codes."""
    scaled = factors / (np.array(SIZES) - 1)
    return np.column_stack([scaled + 0.05 * rng.normal(size=scaled.shape),
                            rng.normal(size=(len(factors), 5))])


def representations(factors: np.ndarray, rng: np.random.Generator, steps: int
                    ) -> dict[str, np.ndarray]:
    """The five representations of the same factor rows."""
    noisy = factors_plus_noise(factors, rng)
    rotation, _ = np.linalg.qr(rng.normal(size=(noisy.shape[1],) * 2))
    return {
        "factors + noise": noisy,
        "rotated": noisy @ rotation,
        "duplicated codes": np.repeat(noisy, 2, axis=1),
        "constant codes": np.column_stack([noisy, np.zeros((len(noisy), 3)) + 0.5]),
        f"trained InfoGAN ({steps} steps)": trained_codes(factors, steps),
    }


def trained_codes(factors: np.ndarray, steps: int) -> np.ndarray:
    """The codes of the dSprites images at ``factors`` under a short InfoGAN run."""
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        config = RunConfig(model="infogan", dataset="dsprites", steps=steps, metrics=())
        run, _, _, _ = runs.train(config, {}, f"sqlite:///{Path(tmp) / 'mlflow.db'}")
    dataset, model = run.plan.dataset, run.model
    model.eval()
    parts = []
    with torch.no_grad():
        for start in range(0, len(factors), 256):
            images = dataset.images(factors[start:start + 256])
            parts.append(model.encode(images).codes())
    return np.concatenate(parts)


def agreement(name: str, codes: np.ndarray, factors: np.ndarray, split: int, say) -> None:
    """Both DCIs under three seeds each; one line per score."""
    train, test = slice(0, split), slice(split, None)
    theirs = [cores.dci_sklearn(codes[train], factors[train], codes[test], factors[test],
                                seed, jobs=0) for seed in SEEDS]
    ours = [cores.dci(codes[train], factors[train], codes[test], factors[test], seed, jobs=0)
            for seed in SEEDS]
    say(f"\n{name} ({codes.shape[1]} codes)")
    for part in PARTS:
        reference = np.array([s[f"dci_sklearn{part}"] for s in theirs])
        value = np.array([s[f"dci{part}"] for s in ours])
        spread = reference.max() - reference.min()
        distance = abs(value.mean() - reference.mean())
        say(f"  dci{part:24s} sklearn {reference.mean():.4f} (spread {spread:.4f})   "
            f"ours {value.mean():.4f} (spread {value.max() - value.min():.4f})   "
            f"|difference| {distance:.4f}  {'within' if distance <= spread else 'OUTSIDE'}")


def speed(codes: np.ndarray, factors: np.ndarray, say) -> None:
    """Per factor, scikit-learn's fit then ours, each with its train and test scoring."""
    train, test = slice(0, 10_000), slice(10_000, 15_000)
    totals = {"sklearn": 0.0, "ours": 0.0}
    say(f"\n## speed: 10,000 / 5,000 points, {codes.shape[1]} codes, one core")
    with threadpool_limits(1):
        for j, size in enumerate(SIZES):
            seconds = {}
            for label, fit in (("sklearn", dci_plugin._sklearn_fit),
                               ("ours", dci_plugin._exact_fit)):
                start = time.perf_counter()
                _, classifier = fit(codes[train], factors[train, j], 0)
                classifier.score(codes[train], factors[train, j])
                classifier.score(codes[test], factors[test, j])
                seconds[label] = time.perf_counter() - start
                totals[label] += seconds[label]
            say(f"  factor {j} ({size:2d} values)  sklearn {seconds['sklearn']:7.1f} s   "
                f"ours {seconds['ours']:6.1f} s   {seconds['sklearn'] / seconds['ours']:5.1f}x")
    say(f"  all factors          sklearn {totals['sklearn']:7.1f} s   ours "
        f"{totals['ours']:6.1f} s   {totals['sklearn'] / totals['ours']:5.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=2000,
                        help="training points of the agreement runs (half as many test points)")
    parser.add_argument("--steps", type=int, default=150, help="InfoGAN training steps")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/dci_exact.txt"))
    args = parser.parse_args()
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)
        args.out.write_text("\n".join(lines) + "\n")

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    factors = rng.integers(0, SIZES, size=(15_000, len(SIZES)))
    reps = representations(factors, rng, args.steps)
    say(f"# python benchmarks/dci_exact.py --points {args.points} --steps {args.steps}")
    speed(reps["factors + noise"], factors, say)
    say("\n## agreement: dci (seeds 0-2) against dci_sklearn (random states 0-2), "
        f"{args.points:,} / {args.points // 2:,} points")
    say("spread: max - min over the three reruns; 'within': ours' mean is no further from "
        "sklearn's mean than sklearn's reruns are from each other")
    rows = slice(0, args.points + args.points // 2)
    for name, codes in reps.items():
        agreement(name, codes[rows], factors[rows], args.points, say)


if __name__ == "__main__":
    main()
