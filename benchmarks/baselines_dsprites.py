"""Baselines on dSprites: every model at its default (CPU) schedule, several seeds, one table.

The models, seeds and schedule come from the suite ``suites/baselines_dsprites.yaml``. Each
(model, seed) is trained and scored exactly as ``disentangle run MODEL --dataset
dsprites --seed S`` would (same runner, default hyper-parameters and steps, one final
evaluation with the suite's metrics). Results are appended to a JSON-lines file as
each run ends, so an interrupted benchmark keeps what it measured and a second call only
runs what is missing; ``--report`` turns the file into a Markdown table (mean and standard
deviation over seeds, and how many seeds each row has). Run from the repository root::

    nice python benchmarks/baselines_dsprites.py [--seeds 3] [--jobs 2] [--models a,b]
    python benchmarks/baselines_dsprites.py --report

Each worker uses one CPU thread. Runs are logged to a throw-away MLflow store unless
``--tracking-uri`` names one to keep.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
from pathlib import Path

import numpy as np
import torch
import yaml
from runs import scored_run

import disentangle

RESULTS = Path(__file__).resolve().parent / "results"
SUITE = Path(__file__).resolve().parent / "suites" / "baselines_dsprites.yaml"
#: columns of the table, in order; per-factor details (``mig.shape``...) stay in the JSON
HEADLINE = ("mig", "sap", "dci_fast", "modularity", "modularity.explicitness", "irs",
            "gaussian_total_correlation", "categorical_accuracy")


def run_one(task: tuple[str, int, int, tuple[str, ...], str | None]) -> dict:
    """One (model, seed, steps, metrics, tracking URI) of this benchmark on dSprites."""
    model, seed, steps, metrics, tracking_uri = task
    return scored_run(model, "dsprites", seed, steps, metrics, "baselines_dsprites",
                      tracking_uri)


def read_results(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def report(records: list[dict], models: list[str], seeds: int,
           columns: tuple[str, ...] = HEADLINE) -> str:
    """A Markdown table: per model, mean +- std (ddof 1) over finished seeds of each score."""
    lines = [
        "| model | seeds | steps | " + " | ".join(columns) + " | ms/step | s/run |",
        "| --- | --- | --- | " + " | ".join("---" for _ in columns) + " | --- | --- |",
    ]
    for model in models:
        rows = [r for r in records if r["model"] == model and r["status"] == "FINISHED"]
        if not rows:
            lines.append(f"| {model} | 0 of {seeds} | | " + " | ".join("" for _ in columns)
                         + " | | |")
            continue
        cells = []
        for key in columns:
            values = [r["scores"][key] for r in rows if key in r["scores"]]
            cells.append(_mean_std(values) if values else "n/a")
        steps = sorted({r["steps"] for r in rows})
        lines.append(f"| {model} | {len(rows)} of {seeds} | {','.join(map(str, steps))} | "
                     + " | ".join(cells) + f" | {np.mean([r['ms_per_step'] for r in rows]):.0f} | "
                     f"{np.mean([r['seconds'] for r in rows]):.0f} |")
    return "\n".join(lines)


def factor_report(records: list[dict], models: list[str], metric: str = "mig") -> str:
    """A Markdown table of a metric's per-factor scores (``mig.shape``...), mean over seeds."""
    finished = [r for r in records if r["status"] == "FINISHED"]
    keys = list(dict.fromkeys(k for r in finished for k in r["scores"]
                              if k.startswith(metric + ".")))
    lines = ["| model | " + " | ".join(k.split(".", 1)[1] for k in keys) + " |",
             "| --- | " + " | ".join("---" for _ in keys) + " |"]
    for model in models:
        rows = [r for r in finished if r["model"] == model]
        if rows:
            lines.append(f"| {model} | " + " | ".join(
                f"{np.mean([r['scores'][k] for r in rows if k in r['scores']]):.3f}"
                for k in keys) + " |")
    return "\n".join(lines)


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


def main() -> None:
    suite = yaml.safe_load(SUITE.read_text())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=len(suite["seeds"]),
                        help="seeds 0..N-1 per model (default: as many as the suite's)")
    parser.add_argument("--models", default=",".join(run["model"] for run in suite["runs"]),
                        help="comma-separated models (default: the suite's)")
    parser.add_argument("--steps", type=int, default=suite["steps"],
                        help="0: each model's default")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    parser.add_argument("--results", type=Path, default=RESULTS / "baselines_dsprites.jsonl",
                        help="JSON-lines file the runs are appended to")
    parser.add_argument("--tracking-uri", default=None, help="MLflow store to keep runs in")
    parser.add_argument("--report", action="store_true", help="only print the table")
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    if args.report:
        records = read_results(args.results)
        print(report(records, models, args.seeds))
        print(f"\nper-factor MIG (mean over seeds):\n\n{factor_report(records, models)}")
        return
    done = {(r["model"], r["seed"]) for r in read_results(args.results)
            if r["status"] == "FINISHED"}
    # seed-major order: a partial run still covers every model
    metrics = tuple(suite["metrics"])
    tasks = [(m, s, args.steps, metrics, args.tracking_uri)
             for s in range(args.seeds) for m in models if (m, s) not in done]
    print(f"disentangle {disentangle.__version__}, torch {torch.__version__}, "
          f"Python {platform.python_version()}; {len(tasks)} runs to do", flush=True)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")
    with context.Pool(args.jobs, maxtasksperchild=1) as pool:
        for record in pool.imap_unordered(run_one, tasks):
            with args.results.open("a") as out:
                out.write(json.dumps(record) + "\n")
            shown = "  ".join(f"{k} {record['scores'][k]:.4f}" for k in HEADLINE
                              if k in record["scores"])
            print(f"{record['model']} seed {record['seed']}: {record['status']} after "
                  f"{record['seconds']:.0f} s  {shown}", flush=True)
    print(report(read_results(args.results), models, args.seeds))


if __name__ == "__main__":
    main()
