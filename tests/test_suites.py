"""Benchmark suites are valid data: known models, valid hyper-parameters, every grid point."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml

from disentangle import config as cfg
from disentangle.registry import get_registry

SUITES = sorted((Path(__file__).resolve().parents[1] / "benchmarks" / "suites").glob("*.yaml"))


def grid_points(entry: dict) -> list[dict]:
    """Every hyper-parameter setting of a suite's model entry (fixed values plus one grid
    combination)."""
    grid = entry.get("grid") or {}
    return [{**(entry.get("fixed") or {}), **dict(zip(grid, values))}
            for values in itertools.product(*grid.values())]


def test_there_are_suites():
    assert {p.stem for p in SUITES} >= {"reference_study", "baselines_dsprites"}


@pytest.mark.parametrize("path", SUITES, ids=lambda p: p.stem)
def test_suite_is_runnable(path):
    suite = yaml.safe_load(path.read_text())
    registry = get_registry()
    assert suite["name"] == path.stem
    assert suite["seeds"] >= 1 and suite["steps"] >= 0
    for dataset in suite["datasets"]:
        registry.dataset(dataset)
    for model, entry in suite["models"].items():
        model_cls = registry.model(model)
        for params in grid_points(entry or {}):
            cfg.instantiate(model_cls.Config, params, model)  # raises on a bad name or value


def test_reference_study_grids():
    suite = yaml.safe_load((SUITES[0].parent / "reference_study.yaml").read_text())
    sizes = {model: len(grid_points(entry)) for model, entry in suite["models"].items()}
    assert sizes == dict.fromkeys(
        ["beta_vae", "annealed_vae", "factor_vae", "dip_vae_i", "dip_vae_ii", "beta_tcvae"], 6)
    assert suite["seeds"] == 50 and suite["steps"] == 300_000 and suite["batch_size"] == 64
    assert grid_points(suite["models"]["annealed_vae"])[0] == {
        "gamma": 1000, "capacity_steps": 100_000, "c_max": 5}
