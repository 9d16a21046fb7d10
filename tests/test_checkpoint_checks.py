"""Checkpoints are checked for structure before a run continues from one, a diverged run
names the checkpoint it really keeps, and no NaN state is ever written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from disentangle import checkpoints
from disentangle.cli import main
from disentangle.errors import DivergenceError
from disentangle.run import CHECKPOINT

TOY = ["toy_autoencoder", "--dataset", "toy_blobs", "--no-progress", "--metrics", ""]


def _only_run():
    client = MlflowClient(f"sqlite:///{Path('mlflow.db').resolve()}")
    experiment = client.get_experiment_by_name("toy_blobs")
    (run,) = client.search_runs([experiment.experiment_id])
    return client, run


def _checkpoint_path(run) -> Path:
    return Path(run.info.artifact_uri.removeprefix("file://")) / CHECKPOINT


def _reshaped(state: dict) -> dict:
    key = next(iter(state["model"]["modules"]))
    state["model"]["modules"][key] = torch.zeros(7, 3)
    return state


def _adam_reshaped(state: dict) -> dict:
    optimizer = next(iter(state["model"]["optimizers"].values()))
    slot = next(iter(optimizer["state"].values()))
    slot["exp_avg"] = torch.zeros(2, 2)
    return state


def _inf_weights(state: dict) -> dict:
    key = next(iter(state["model"]["modules"]))
    state["model"]["modules"][key] = torch.full_like(state["model"]["modules"][key], float("inf"))
    return state


MANGLED = [
    (lambda s: {k: v for k, v in s.items() if k != "config"}, "it has no config"),
    (lambda s: {k: v for k, v in s.items() if k != "model"}, "it has no model"),
    (lambda s: {**s, "config": "{not json"}, "its config is not JSON text"),
    (lambda s: {**s, "config": 17}, "its config is not JSON text"),
    (lambda s: {**s, "config": "[1, 2]"}, "its config is not a run record"),
    (lambda s: {**s, "config": '{"model": "toy_autoencoder", "params": 3}'},
     "its stored configuration is not a run record"),
    (lambda s: {**s, "step": "12"}, "its step is '12', not a whole number"),
    (lambda s: {**s, "step": True}, "its step is True"),
    (lambda s: {**s, "step": -4}, "its step is -4"),
    (lambda s: {**s, "model": [1, 2]}, "its model state is not a mapping"),
    (lambda s: {**s, "window": {"loss": ["x"]}}, "its loss window is not lists of numbers"),
    (_reshaped, "does not fit model ToyAutoencoder: RuntimeError"),
    (_adam_reshaped, "optimizer 'adam' state 'exp_avg' has shape (2, 2)"),
    (_inf_weights, "its model state holds NaN or infinite values"),
]


def test_checkpoints_of_the_wrong_structure_are_refused_in_one_line(with_toy, capsys):
    assert main(["run", *TOY, "--steps", "6", "--checkpoint-every", "3"]) == 0
    _, run = _only_run()
    path = _checkpoint_path(run)
    original = checkpoints.load(path)
    for mangle, message in MANGLED:
        state = mangle({k: v for k, v in torch.load(path, weights_only=True).items()})
        checkpoints.save(path, {k: v for k, v in state.items() if k != "format"})
        code = main(["run", "--resume", run.info.run_id, "--steps", "9", "--no-progress"])
        out, err = capsys.readouterr()
        assert code == 2, (message, out, err)
        assert message in err and len(err.strip().splitlines()) == 1, (message, err)
        assert "Traceback" not in out + err
        checkpoints.save(path, {k: v for k, v in original.items() if k != "format"})
    path.write_bytes(os.urandom(5000))
    assert main(["run", "--resume", run.info.run_id, "--steps", "9", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "is corrupt" in err and "run code" not in err  # random bytes are not a pickle


def test_a_divergence_before_the_first_checkpoint_says_none_is_kept(with_toy, capsys):
    assert main(["run", *TOY, "--steps", "50", "--checkpoint-every", "10",
                 "--set", "diverge_at=2"]) == 1
    out = capsys.readouterr().out
    assert "diverged at step 2 (value nan); no checkpoint was written before it" in out
    _, run = _only_run()
    assert run.info.status == "FAILED" and not _checkpoint_path(run).exists()


def test_a_divergence_names_the_step_of_the_checkpoint_it_keeps(with_toy, capsys):
    assert main(["run", *TOY, "--steps", "50", "--checkpoint-every", "10",
                 "--set", "diverge_at=25"]) == 1
    out = capsys.readouterr().out
    _, run = _only_run()
    assert f"the last good checkpoint, of step 20, is kept at {_checkpoint_path(run)}" in out


def test_a_state_holding_nan_is_never_written(with_toy, capsys, monkeypatch):
    from toy_plugin import ToyAutoencoder

    real = ToyAutoencoder.checkpoint_state
    calls = []

    def poisoned(self):
        state = real(self)
        calls.append(1)
        if len(calls) == 2:  # the second checkpoint: its optimiser state is already inf
            optimizer = next(iter(state["optimizers"].values()))
            next(iter(optimizer["state"].values()))["exp_avg_sq"].fill_(float("inf"))
        return state

    monkeypatch.setattr(ToyAutoencoder, "checkpoint_state", poisoned)
    assert main(["run", *TOY, "--steps", "30", "--checkpoint-every", "5"]) == 1
    out = capsys.readouterr().out
    assert "the training state holds NaN or infinite values at step 10 (optimizers/" in out
    assert "the last good checkpoint, of step 5, is kept" in out
    _, run = _only_run()
    assert checkpoints.load(_checkpoint_path(run))["step"] == 5


def test_nonfinite_finds_the_first_bad_tensor_by_key_path():
    assert checkpoints.nonfinite({"a": torch.ones(3), "b": [torch.arange(3)]}) is None
    assert checkpoints.nonfinite({"a": torch.ones(3), "b": [1, torch.tensor([0.0, float(
        "nan")])]}) == "b/1"
    with pytest.raises(DivergenceError, match="at step 4 \\(x/y\\)"):
        raise DivergenceError.state("x/y", 4)
    assert checkpoints.nonfinite({"e": torch.empty(0), "c": torch.tensor([1 + 1j])}) is None
    assert checkpoints.nonfinite({"a": torch.ones(2), "c": torch.tensor(
        [complex(1, float("inf"))])}) == "c"
    assert checkpoints.nonfinite([torch.ones(2), torch.tensor([-float("inf")])]) == "1"


def test_the_writer_writes_a_copy_taken_when_it_was_submitted(tmp_path):
    writer = checkpoints.Writer()
    state = {"w": torch.zeros(3), "window": {"loss": [1.0]}}
    assert writer.submit(tmp_path / "a.pt", state, 7) is None
    state["w"] += 5  # training goes on while the file is written
    state["window"]["loss"].append(2.0)
    assert writer.submit(tmp_path / "b.pt", state, 8) == 7  # waits for the write before
    assert writer.wait() == 8
    assert writer.wait() is None
    first, second = (checkpoints.load(tmp_path / n) for n in ("a.pt", "b.pt"))
    assert torch.equal(first["w"], torch.zeros(3)) and first["window"] == {"loss": [1.0]}
    assert torch.equal(second["w"], torch.full((3,), 5.0))


def test_the_writer_hands_a_failed_write_to_the_caller(tmp_path):
    (tmp_path / "file").write_text("a file where the folder should be")
    writer = checkpoints.Writer()
    writer.submit(tmp_path / "file" / "a.pt", {"w": torch.zeros(1)}, 1)
    with pytest.raises(OSError):
        writer.wait()
    assert writer.wait() is None  # the error is raised once
