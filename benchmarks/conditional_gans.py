"""Conditional GANs next to InfoGAN: conditional accuracy and MIG, several seeds, one table.

Each (model, seed) of ``cgan``, ``acgan``, ``projection_cgan`` and ``infogan`` is trained
and scored as ``disentangle run MODEL --dataset DATASET --seed S --steps N --metrics
conditional_accuracy,mig,categorical_accuracy`` would (same runner, default
hyper-parameters, one final evaluation). The conditional GANs are conditioned on the
dataset's first categorical factor (``digit``, ``shape``); InfoGAN's first categorical code
is matched to it by the metric. Their MIG and categorical accuracy come from the
inverse-encoder protocol, InfoGAN's from its Q head. Results are appended to a JSON-lines
file as each run ends (a second call only runs what is missing); ``--report`` prints the
Markdown table (mean and standard deviation over seeds). Run from the repository root::

    nice python benchmarks/conditional_gans.py --dataset digits --steps 1000 [--seeds 3]
    python benchmarks/conditional_gans.py --dataset digits --report

The classifier judging conditional accuracy is trained once per dataset and cached (see
``plugins/metrics/conditional.py``); its held-out accuracy is the table's last column.
Each worker uses one CPU thread; runs go to a throw-away MLflow store.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
from pathlib import Path

import torch
from baselines_dsprites import read_results, report
from runs import scored_run

import disentangle

RESULTS = Path(__file__).resolve().parent / "results"
MODELS = ("cgan", "acgan", "projection_cgan", "infogan")
METRICS = ("conditional_accuracy", "mig", "categorical_accuracy")
#: table columns: the scores, then the judge's own held-out accuracy
COLUMNS = (*METRICS, "conditional_accuracy.classifier")


def run_one(task: tuple[str, str, int, int]) -> dict:
    """One (model, dataset, seed, steps) of this benchmark; returns its record."""
    model, dataset, seed, steps = task
    return scored_run(model, dataset, seed, steps, METRICS, "conditional_gans")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits", help="dataset plugin (default: digits)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per model")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated models")
    parser.add_argument("--steps", type=int, default=1000, help="training steps per run")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    parser.add_argument("--results", type=Path, default=None,
                        help="JSON-lines file (default: results/conditional_gans_DATASET.jsonl)")
    parser.add_argument("--report", action="store_true", help="only print the table")
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    results = args.results or RESULTS / f"conditional_gans_{args.dataset}.jsonl"
    records = [r for r in read_results(results) if r["dataset"] == args.dataset]
    if args.report:
        print(report(records, models, args.seeds, COLUMNS))
        return
    done = {(r["model"], r["seed"]) for r in records if r["status"] == "FINISHED"}
    # seed-major order: a partial run still covers every model
    tasks = [(m, args.dataset, s, args.steps) for s in range(args.seeds) for m in models
             if (m, s) not in done]
    print(f"disentangle {disentangle.__version__}, torch {torch.__version__}, "
          f"Python {platform.python_version()}; {len(tasks)} runs to do", flush=True)
    results.parent.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")
    with context.Pool(args.jobs, maxtasksperchild=1) as pool:
        for record in pool.imap_unordered(run_one, tasks):
            with results.open("a") as out:
                out.write(json.dumps(record) + "\n")
            shown = "  ".join(f"{k} {record['scores'][k]:.4f}" for k in METRICS
                              if k in record["scores"])
            print(f"{record['model']} seed {record['seed']}: {record['status']} after "
                  f"{record['seconds']:.0f} s  {shown}", flush=True)
    records = [r for r in read_results(results) if r["dataset"] == args.dataset]
    print(report(records, models, args.seeds, COLUMNS))


if __name__ == "__main__":
    main()
