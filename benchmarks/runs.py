"""Shared helpers of the training benchmarks: one seeded CLI-equivalent run, and summaries.

A run here is what ``disentangle run MODEL --dataset DATASET --seed S`` does (same config
resolution, runner and metrics), logged to a throw-away MLflow store the caller names.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from disentangle import runner
from disentangle.config import RunConfig, split_assignments
from disentangle.registry import get_registry
from disentangle.tracking import Tracker


def train_and_score(model: str, dataset: str, seed: int, overrides: dict[str, str], steps: int,
                    uri: str, histories: Iterable[str] = ()) -> dict[str, Any]:
    """Train one seed on the CPU and return its final scores, ``steps``, ``wall`` (seconds of
    training plus evaluation) and ``history`` (each named training loss by logged step)."""
    registry = get_registry()
    setup = runner.prepare(RunConfig(model=model, dataset=dataset, seed=seed, steps=steps,
                                     device="cpu"), overrides, registry)
    tracker = Tracker(uri)
    job = runner.Runner(setup, registry, tracker, torch.device("cpu"), echo=lambda _: None,
                        progress=False)
    started = time.perf_counter()
    job.start()
    result = job.train()
    wall = time.perf_counter() - started
    if result.status != "FINISHED":
        raise RuntimeError(f"seed {seed}: run {result.run_id} ended {result.status}")
    history = {key: {m.step: m.value for m in
                     tracker.client.get_metric_history(result.run_id, f"train/{key}")}
               for key in histories}
    return {"steps": setup.config.steps, "wall": wall, "history": history, **result.scores}


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
