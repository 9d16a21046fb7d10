"""Suites: expansion, validation, interrupted benches that resume without repeats, compare,
report."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

import disentangle
from disentangle import compare, suites
from disentangle.cli import main
from disentangle.errors import UsageError
from disentangle.registry import get_registry

SUITE = """
name: tiny
description: a toy grid
datasets: [toy_blobs]
seeds: [0, 1]
steps: 12
eval_every: 6
metrics: [mig]
runs:
  - model: toy_autoencoder
    grid: {lr: [0.01, 0.001]}
    set: {latents: 2}
"""


def test_a_suite_expands_into_one_spec_per_grid_point_dataset_and_seed():
    suite = suites.parse_suite(SUITE, "tiny")
    assert suite.experiment == "suite-tiny"
    assert [(s.config.seed, dict(s.overrides)["lr"]) for s in suite.specs] == [
        (0, "0.01"), (1, "0.01"), (0, "0.001"), (1, "0.001")]
    assert all(s.config.steps == 12 and s.config.metrics == ("mig",) for s in suite.specs)
    assert len({s.key for s in suite.specs}) == 4
    again = suites.parse_suite(SUITE, "tiny")
    assert [s.key for s in again.specs] == [s.key for s in suite.specs]  # stable keys


@pytest.mark.parametrize("text, message", [
    ("runs: []", "non-empty 'runs' list"),
    ("runs: [{model: a}]\nsteeps: 3", "unknown keys ['steeps']"),
    ("runs: [{grid: {lr: [1]}}]", "expected a mapping with a 'model'"),
    ("runs: [{model: a, step: 3}]", "unknown keys ['step']"),
    ("steps: many\nruns: [{model: a}]", "steps"),
    ("runs: [{model: a, seeds: [x]}]", "seeds must be integers"),
    ("runs: [", "not valid YAML"),
    ("runs: [{model: a, device: quantum}]", "unknown device 'quantum'"),
    ("device: [cpu]\nruns: [{model: a}]", "unknown device ['cpu']"),
    ("runs: [{model: a, grid: {beta: []}}]", "grid beta is an empty list"),
    ("seeds: []\nruns: [{model: a}]", "seeds is an empty list"),
    ("runs: [{model: a, datasets: []}]", "datasets is an empty list"),
    ("runs: [{model: a, grid: {1: [2], beta: [1]}}]", "1 is not an option name"),
    ("runs: [{model: a, set: {beta: {x: 1}}}]", "set beta must be a value or a list"),
    ("runs: [{model: a, grid: {beta: [{x: 1}]}}]", "grid beta must be a value or a list"),
    ("runs: [{model: a, grid: {a: [1,2,3,4,5,6,7,8,9,10], b: [1,2,3,4,5,6,7,8,9,10], "
     "c: [1,2,3,4,5,6,7,8,9,10], d: [1,2,3,4,5,6,7,8,9,10,11]}}]", "more than 10,000 runs"),
    ("runs: [{model: a, grid: {beta: " + "[" * 30 + "1" + "]" * 30 + "}}]",
     "nested more than 20 levels deep"),
    ("runs: " + "[" * 5000 + "]" * 5000, "nested"),
])
def test_malformed_suites_are_refused_clearly(text, message):
    with pytest.raises(UsageError, match=message.replace("[", r"\[")):
        suites.parse_suite(text, "bad")


def test_bad_settings_are_found_before_anything_runs(with_toy, capsys):
    Path("bad.yaml").write_text(SUITE.replace("lr: [0.01, 0.001]", "lr: [0.01, fast]"))
    assert main(["bench", "bad.yaml"]) == 2
    err = capsys.readouterr().err
    assert "suite tiny, toy_autoencoder on toy_blobs seed 0 (latents=2 lr=fast)" in err
    assert not Path("mlflow.db").exists()
    assert main(["bench", "nothing-here"]) == 2
    assert "no suite file 'nothing-here'" in capsys.readouterr().err


class _CtrlCOnce:
    """Presses Ctrl-C at the first evaluation of the n-th run that starts."""

    def __init__(self, run_number: int):
        self.left = run_number

    @disentangle.hookimpl
    def disentangle_before_run(self, config, run_id: str) -> None:
        self.left -= 1

    @disentangle.hookimpl
    def disentangle_after_eval(self, run_id: str, step: int, scores: dict) -> None:
        if self.left == 0:
            self.left = -1
            os.kill(os.getpid(), signal.SIGINT)


def _suite_runs() -> pd.DataFrame:
    return compare.load_runs(f"sqlite:///{Path('mlflow.db').resolve()}", suite="tiny",
                             finished_only=False)


def test_an_interrupted_bench_resumes_without_repeats_then_compares_and_reports(with_toy, capsys):
    Path("tiny.yaml").write_text(SUITE)
    with_toy.add_plugin(_CtrlCOnce(3), "ctrl_c")
    assert main(["bench", "tiny.yaml", "--no-progress"]) == 130
    out = capsys.readouterr().out
    assert "interrupted: rerun `disentangle bench tiny.yaml` to continue" in out
    runs = _suite_runs()
    assert sorted(runs["status"]) == ["FINISHED", "FINISHED", "KILLED"]

    assert main(["bench", "tiny.yaml", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.count("skipped: ") == 2 and out.count("resumed: ") == 1
    assert out.count("started: ") == 1
    assert "suite tiny: 1 resumed, 2 skipped, 1 started" in out
    runs = _suite_runs()
    assert len(runs) == 4 and set(runs["status"]) == {"FINISHED"}
    parent = runs["tags.mlflow.parentRunId"].unique()
    assert len(parent) == 1
    client = MlflowClient(f"sqlite:///{Path('mlflow.db').resolve()}")
    assert client.get_run(parent[0]).data.tags["disentangle.suite.key"] == "parent"

    assert main(["bench", "tiny.yaml", "--no-progress"]) == 0
    assert "suite tiny: 4 skipped" in capsys.readouterr().out

    assert main(["compare", "--suite", "tiny", "--markdown", "--csv", "runs.csv"]) == 0
    out = capsys.readouterr().out
    assert "| toy_blobs | toy_autoencoder | lr=0.001 | 2 |" in out
    assert "| toy_blobs | toy_autoencoder | lr=0.01 | 2 |" in out
    table = pd.read_csv("runs.csv")
    assert len(table) == 4 and table["mig"].between(0, 1).all()
    assert Path("comparison-tiny.png").stat().st_size > 1000
    assert "comparison-tiny.png" in [a.path for a in client.list_artifacts(parent[0])]

    assert main(["compare", "--suite", "tiny", "--curves", "curves.png"]) == 0
    assert Path("curves.png").stat().st_size > 1000
    assert "curves.png" in [a.path for a in client.list_artifacts(parent[0])]
    history = compare.histories(f"sqlite:///{Path('mlflow.db').resolve()}",
                                list(runs["run_id"]))
    assert sorted(history.loc[history["key"] == "eval/mig", "step"].unique()) == [6, 12]
    capsys.readouterr()

    assert main(["report", "--suite", "tiny", "--out", "report"]) == 0
    page = Path("report/index.html").read_text()
    assert page.count("<table>") == 2 and "lr=0.001" in page and "lr=0.01" in page
    pictures = [p for p in Path("report/runs").rglob("*.png")]
    assert len(pictures) == 2 and {p.name for p in pictures} == {"code_factor_mi.png"}
    Path("taken").write_text("")
    assert main(["report", "--suite", "tiny", "--out", "taken/report"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out 'taken/report' cannot be written") and err.count("\n") == 1


def test_a_suite_without_finished_runs_has_nothing_to_report(with_toy, capsys):
    Path("one.yaml").write_text(SUITE.replace("name: tiny", "name: one")
                                .replace("seeds: [0, 1]", "seeds: [0]")
                                .replace("[0.01, 0.001]", "[0.01]"))
    with_toy.add_plugin(_CtrlCOnce(1), "ctrl_c")
    assert main(["bench", "one.yaml", "--no-progress"]) == 130
    capsys.readouterr()
    for argv in (["report", "--suite", "one"], ["compare", "--suite", "one"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err == "error: suite 'one' has no finished runs yet (1 killed)\n"


@pytest.mark.parametrize("argv,message", [
    (["compare", "--suite", "x' OR '1'='1"], "suite name \"x' OR '1'='1\": use 1 to 100"),
    (["compare", "--plot", "/nonexistent/x.png"], "--plot '/nonexistent/x.png': folder "
                                                   "'/nonexistent' does not exist"),
    (["compare", "--csv", "no/such/folder/runs.csv"], "--csv 'no/such/folder/runs.csv'"),
    (["report", "--suite", "nosuch"], "no suite 'nosuch' in sqlite:///"),
    (["compare", "--curves", "/nonexistent/c.png"], "--curves '/nonexistent/c.png': folder"),
    (["ui", "--port", "-1"], "--port must lie in [1, 65535], not -1"),
    (["ui", "--port", "99999999"], "--port must lie in [1, 65535], not 99999999"),
    (["ui", "--host", "bad host name"], "--host 'bad host name' is not an address"),
])
def test_compare_and_ui_refuse_bad_values_in_one_line(workdir, capsys, argv, message):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert message in err and "Traceback" not in out + err
    assert not Path("/nonexistent").exists() and not Path("no").exists()


def test_a_suite_name_that_cannot_be_matched_safely_is_refused():
    with pytest.raises(UsageError, match="suite name 'a b': use 1 to 100 letters"):
        suites.parse_suite(SUITE.replace("name: tiny", "name: a b"), "x")


def test_compare_summarizes_by_setting_with_sample_std():
    runs = pd.DataFrame({
        "run_id": list("abcd"), "params.model": ["m"] * 4, "params.dataset": ["d"] * 4,
        "params.seed": ["0", "1", "0", "1"], "params.model.beta": ["1", "1", "4", "4"],
        "params.model.width": ["8"] * 4, "metrics.eval/mig": [0.1, 0.3, 0.5, 0.5],
    })
    assert compare.metric_names(runs) == ["mig"]
    summary = compare.summarize(compare.tidy(runs, ["mig"]), ["mig"])
    assert list(summary["setting"]) == ["beta=1", "beta=4"]
    assert summary["mig mean"].tolist() == pytest.approx([0.2, 0.5])
    assert summary["mig std"].tolist() == pytest.approx([0.1414213, 0.0])
    with pytest.raises(UsageError, match="no run logged dci"):
        compare.tidy(runs, ["dci"])


SUITE_FILES = sorted((Path(__file__).resolve().parents[1] / "benchmarks" / "suites")
                     .glob("*.yaml"))


def test_the_shipped_suites_are_there():
    assert {p.stem for p in SUITE_FILES} >= {"smoke", "reference_study", "baselines_dsprites"}


@pytest.mark.parametrize("path", SUITE_FILES, ids=lambda p: p.stem)
def test_every_shipped_suite_loads(path):
    # what `disentangle bench NAME --dry-run` checks: known names, valid settings and
    # hyper-parameters for every run, no run listed twice
    suite = suites.load_suite(str(path), get_registry())
    assert suite.name == path.stem and suite.specs


def test_reference_study_grids():
    suite = suites.load_suite(str(SUITE_FILES[0].parent / "reference_study.yaml"),
                              get_registry())
    settings: dict[str, set] = {}
    for spec in suite.specs:
        assert (spec.config.dataset, spec.config.steps, spec.config.batch_size) == (
            "dsprites", 300_000, 64)
        settings.setdefault(spec.config.model, set()).add(spec.overrides)
    assert {model: len(points) for model, points in settings.items()} == dict.fromkeys(
        ["beta_vae", "annealed_vae", "factor_vae", "dip_vae_i", "dip_vae_ii", "beta_tcvae"], 6)
    assert len(suite.specs) == 6 * 6 * 50
    assert {s.config.seed for s in suite.specs} == set(range(50))
    assert dict(suite.specs[len(suite.specs) // 6].overrides) == {  # annealed_vae, first point
        "gamma": "1000", "capacity_steps": "100000", "c_max": "5"}


def _laughs(where: str) -> str:
    """A "billion laughs" suite: nine-fold aliases nested nine deep, placed at ``where``."""
    lines = ['a0: &a0 "lol"']
    lines += [f"a{i}: &a{i} [{', '.join(f'*a{i - 1}' for _ in range(9))}]" for i in range(1, 10)]
    body = {"set": "runs: [{model: a, set: {beta: *a9}}]",
            "grid": "runs: [{model: a, grid: {beta: *a9}}]",
            "description": "description: *a9\nruns: [{model: a}]"}[where]
    return "\n".join(["x:", *("  " + line for line in lines), body])


@pytest.mark.parametrize("where", ["set", "grid", "description"])
def test_alias_bombs_are_refused_quickly_in_bounded_memory(where):
    import time
    import tracemalloc

    tracemalloc.start()
    started = time.monotonic()
    with pytest.raises(UsageError, match="aliases expand to more than 100,000 values"):
        suites.parse_suite(_laughs(where), "laughs")
    took, (_, peak) = time.monotonic() - started, tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert took < 2 and peak < 20_000_000, (took, peak)


def test_suite_files_must_be_small_utf8_text(with_toy, capsys):
    Path("utf16.yaml").write_bytes("runs: [{model: toy_autoencoder}]".encode("utf-16"))
    Path("latin1.yaml").write_bytes("description: caf\xe9\nruns: [{model: a}]".encode("latin-1"))
    Path("big.yaml").write_bytes(b"description: '" + b"x" * 2_000_000 + b"'\nruns: []\n")
    for name, message in [("utf16.yaml", "is not UTF-8 text (byte 0)"),
                          ("latin1.yaml", "is not UTF-8 text (byte 16)"),
                          ("big.yaml", "is larger than 1,000,000 bytes"),
                          ("x" * 5000, "File name too long")]:
        assert main(["bench", name, "--dry-run"]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (name, err)
