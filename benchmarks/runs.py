"""Shared helpers of the training benchmarks: one seeded CLI-equivalent run, and summaries.

A run here is what ``disentangle run MODEL --dataset DATASET --seed S`` does (same config
resolution, runner and metrics), logged to a throw-away MLflow store the caller names.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from disentangle.config import RunConfig, split_assignments
from disentangle.loop import RunResult
from disentangle.loop import train as train_run
from disentangle.plan import plan_new
from disentangle.registry import get_registry
from disentangle.run import Run, new_run
from disentangle.tracking import Tracker


def train(config: RunConfig, overrides: dict[str, str], uri: str,
          final_evaluation_only: bool = False) -> tuple[Run, RunResult, Tracker, float]:
    """Plan and train one run on the CPU, logged to the store at ``uri``; returns the
    finished run, its result, its tracker and the wall seconds of training plus evaluation.
    ``final_evaluation_only`` skips the periodic evaluations (one at the end remains)."""
    registry = get_registry()
    plan = plan_new(replace(config, device="cpu"), overrides, registry)
    if final_evaluation_only:
        plan = replace(plan, settings=replace(plan.settings, eval_every=plan.settings.steps + 1))
    tracker = Tracker(uri)
    started = time.perf_counter()
    run = new_run(plan, registry, tracker, echo=lambda _: None)
    result = train_run(run, echo=lambda _: None, progress=False)
    return run, result, tracker, time.perf_counter() - started


def train_and_score(model: str, dataset: str, seed: int, overrides: dict[str, str], steps: int,
                    uri: str, histories: Iterable[str] = ()) -> dict[str, Any]:
    """Train one seed on the CPU and return its final scores, ``steps``, ``wall`` (seconds of
    training plus evaluation) and ``history`` (each named training loss by logged step)."""
    run, result, tracker, wall = train(RunConfig(model=model, dataset=dataset, seed=seed,
                                                 steps=steps), overrides, uri)
    if result.status != "FINISHED":
        raise RuntimeError(f"seed {seed}: run {result.run_id} ended {result.status}")
    history = {key: {m.step: m.value for m in
                     tracker.client.get_metric_history(result.run_id, f"train/{key}")}
               for key in histories}
    return {"steps": run.plan.settings.steps, "wall": wall, "history": history, **result.scores}


def scored_run(model: str, dataset: str, seed: int, steps: int, metrics: tuple[str, ...],
               experiment: str, tracking_uri: str | None = None) -> dict[str, Any]:
    """Train one (model, seed) in a scratch folder as ``disentangle run`` would, on one CPU
    thread with a single evaluation at the end; returns its record (scores and timings)."""
    torch.set_num_threads(1)
    previous = Path.cwd()
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)
        try:
            config = RunConfig(model=model, dataset=dataset, seed=seed, steps=steps,
                               metrics=metrics, experiment=experiment)
            uri = tracking_uri or f"sqlite:///{Path(scratch) / 'mlflow.db'}"
            _, result, _, _ = train(config, {}, uri, final_evaluation_only=True)
        finally:
            os.chdir(previous)
    evaluation = sum(result.evaluation.seconds.values())
    return {"model": model, "dataset": dataset, "seed": seed, "steps": result.step,
            "status": result.status, "seconds": round(result.seconds, 1),
            "eval_seconds": round(evaluation, 1),
            "ms_per_step": round(1000 * (result.seconds - evaluation) / max(result.step, 1)),
            "scores": result.scores, "skipped": result.skipped}


def run_seeds(model: str, dataset: str, args: argparse.Namespace, overrides: dict[str, str],
              histories: Iterable[str] = ()) -> Iterator[tuple[int, dict[str, Any]]]:
    """Print the environment, then train and score seeds ``0..args.seeds-1`` one after
    another in a throw-away MLflow store, yielding ``(seed, row of train_and_score)``."""
    print(f"# torch {torch.__version__}, Python {platform.python_version()}, CPU, "
          f"{args.threads} thread(s); overrides: {overrides or 'none'}")
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        for seed in range(args.seeds):
            yield seed, train_and_score(model, dataset, seed, overrides, args.steps, uri,
                                        histories)


def summarise(rows: list[dict[str, Any]], keys: Iterable[str]) -> None:
    """Print mean, spread (sample std), min and max of each key over the rows (seeds)."""
    for key in keys:
        values = np.array([row[key] for row in rows])
        spread = f", std {values.std(ddof=1):.4f} (ddof=1)" if len(values) > 1 else ""
        print(f"{key}: mean {values.mean():.4f}{spread}, min {values.min():.4f}, "
              f"max {values.max():.4f} over {len(values)} seed(s)")


def seed_arguments(description: str) -> tuple[argparse.Namespace, dict[str, str]]:
    """The command line of a seeded training benchmark (``--seeds --steps --threads --set``);
    sets torch's thread count and returns the parsed ``--set`` overrides."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seeds", type=int, default=3, help="runs with seeds 0..N-1")
    parser.add_argument("--steps", type=int, default=0, help="0: the model's default schedule")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="model hyper-parameter override")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args, split_assignments(args.overrides)
