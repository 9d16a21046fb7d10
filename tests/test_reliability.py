"""Crash safety: kill -9 and resume, torn writes, store outages, plugins that raise."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

import disentangle
from disentangle import checkpoints, pictures
from disentangle.cli import main
from disentangle.errors import UsageError
from disentangle.lease import settle
from disentangle.run import CHECKPOINT
from disentangle.tracking import Tracker, run_cache

STEPS = 90
RUN = ["run", "toy_autoencoder", "--dataset", "toy_blobs", "--no-progress", "--metrics", "mig",
       "--seed", "5", "--steps", str(STEPS), "--checkpoint-every", "3", "--eval-every", "30",
       "--set", "step_delay=0.02"]


def _client() -> MlflowClient:
    return MlflowClient(f"sqlite:///{Path('mlflow.db').resolve()}")


def _runs() -> list:
    client = _client()
    experiment = client.get_experiment_by_name("toy_blobs") if Path("mlflow.db").exists() else None
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time"])


def _checkpoint(run) -> Path:
    return Path(run.info.artifact_uri.removeprefix("file://")) / CHECKPOINT


def _spawn(toy_site: Path, args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(toy_site)}
    return subprocess.Popen([sys.executable, "-m", "disentangle.cli", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _same_record(run_id: str, straight) -> None:
    """Run ``run_id`` ended FINISHED with the weights, scores and metric history of the
    uninterrupted run ``straight``."""
    resumed = _client().get_run(run_id)
    assert resumed.info.status == "FINISHED"
    a = checkpoints.load(_checkpoint(straight))["model"]["modules"]
    b = checkpoints.load(_checkpoint(resumed))["model"]["modules"]
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert set(resumed.data.metrics) == set(straight.data.metrics)
    for key in straight.data.metrics:
        ours = [(m.step, m.value) for m in _client().get_metric_history(run_id, key)]
        theirs = [(m.step, m.value) for m in
                  _client().get_metric_history(straight.info.run_id, key)]
        assert sorted(ours) == sorted(theirs), key
    scores = Path(resumed.info.artifact_uri.removeprefix("file://")) / "scores.json"
    assert scores.is_file()


def test_kill_9_at_random_moments_then_resume_equals_an_uninterrupted_run(with_toy, toy_site):
    assert main(RUN) == 0
    straight = _runs()[0]

    chance = random.Random(11)
    proc = _spawn(toy_site, RUN)
    _wait_for(lambda: len(_runs()) == 2 and _checkpoint(_runs()[1]).is_file(), "a checkpoint")
    run_id = _runs()[1].info.run_id
    steps_at_kill = []
    for _ in range(3):
        time.sleep(chance.uniform(0.0, 0.6))
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        state = checkpoints.load(_checkpoint(_runs()[1]))  # never torn
        steps_at_kill.append(int(state["step"]))
        assert state["step"] < STEPS
        assert _client().get_run(run_id).info.status == "RUNNING"  # nobody could close it
        proc = _spawn(toy_site, ["run", "--resume", run_id, "--no-progress"])
        _wait_for(lambda: checkpoints.load(_checkpoint(_runs()[1]))["step"] > steps_at_kill[-1],
                  "the resumed run to pass its checkpoint")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "Traceback" not in err

    assert len(set(steps_at_kill)) == 3, steps_at_kill
    _same_record(run_id, straight)


def test_kill_9_sigint_and_sigterm_anywhere_end_in_the_uninterrupted_run(with_toy, toy_site):
    """Stops before the first checkpoint, by SIGINT and SIGTERM at random moments, and by
    kill -9 in the final evaluation: each resume carries on, and the run ends as if it had
    never stopped."""
    run = [*RUN, "--checkpoint-every", "30", "--set", "encode_delay=0.05"]
    assert main(run) == 0
    straight = _runs()[0]
    chance = random.Random(5)

    proc = _spawn(toy_site, run)  # 1. kill -9 before the first checkpoint
    _wait_for(lambda: len(_runs()) == 2, "the run to be created")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    run_id = _runs()[1].info.run_id
    assert not _checkpoint(_runs()[1]).exists()
    resume = ["run", "--resume", run_id, "--no-progress"]
    for sig in (signal.SIGINT, signal.SIGTERM):  # 2. a clean stop at a random moment
        proc = _spawn(toy_site, resume)
        _wait_for(lambda p=proc: f'"pid": {p.pid},' in
                  _client().get_run(run_id).data.tags.get("disentangle.lease", ""),
                  "the resumed run to take its lease")
        time.sleep(chance.uniform(0.0, 0.5))
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, (sig, err)
        assert _client().get_run(run_id).info.status == "KILLED"
    proc = _spawn(toy_site, resume)  # 3. kill -9 in the final evaluation
    _wait_for(lambda: _checkpoint(_runs()[1]).is_file()
              and checkpoints.load(_checkpoint(_runs()[1]))["step"] == STEPS,
              "the last checkpoint")
    assert proc.poll() is None, "the final evaluation ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert _client().get_run(run_id).info.status == "RUNNING"
    proc = _spawn(toy_site, resume)  # 4. finishes the evaluation, trains nothing
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "Traceback" not in err, err
    _same_record(run_id, straight)


def test_kill_9_during_checkpoint_writes_never_tears_the_file(tmp_path):
    path = tmp_path / "last.pt"
    writer = (
        "import sys, torch\n"
        "from disentangle import checkpoints\n"
        "step = int(sys.argv[2])\n"
        "while True:\n"
        "    step += 1\n"
        "    checkpoints.save(sys.argv[1], {'step': step, 'w': torch.full((1_000_000,), "
        "float(step))})\n"
    )
    chance = random.Random(3)
    step = 0
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", writer, str(path), str(step)])
        _wait_for(lambda s=step: path.is_file() and checkpoints.load(path)["step"] > s + 2,
                  "checkpoint writes")
        time.sleep(chance.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        state = checkpoints.load(path)
        assert torch.equal(state["w"], torch.full((1_000_000,), float(state["step"])))
        step = int(state["step"])
    # a temporary file left by a killed writer is removed by the next save
    (tmp_path / ".last.pt.leftover.tmp").write_bytes(b"torn")
    checkpoints.save(path, {"step": step + 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_a_run_still_training_cannot_be_resumed_twice(with_toy, toy_site, capsys):
    proc = _spawn(toy_site, [*RUN, "--steps", "100000"])
    try:
        _wait_for(lambda: len(_runs()) == 1 and _checkpoint(_runs()[0]).is_file(), "a checkpoint")
        assert main(["run", "--resume", _runs()[0].info.run_id]) == 2
        assert f"being trained right now by process {proc.pid}" in capsys.readouterr().err
    finally:
        proc.kill()
        proc.wait(timeout=30)


class _Outage:
    """Makes the tracking store fail between chosen evaluation steps."""

    METHODS = ("log_batch", "set_tag", "log_artifact", "log_artifacts", "set_terminated")

    def __init__(self, monkeypatch: pytest.MonkeyPatch, down_at: dict[int, bool]):
        self.down, self.down_at = False, down_at
        for name in self.METHODS:
            original = getattr(MlflowClient, name)
            monkeypatch.setattr(MlflowClient, name, self._guard(original))

    def _guard(self, original):
        def call(client, *args, **kwargs):
            if self.down:
                raise ConnectionError("tracking server went away")
            return original(client, *args, **kwargs)
        return call

    @disentangle.hookimpl
    def disentangle_after_eval(self, run_id: str, step: int, scores: dict) -> None:
        self.down = self.down_at.get(step, self.down)


def test_training_survives_a_tracking_store_outage_and_syncs_later(with_toy, monkeypatch,
                                                                   capsys):
    monkeypatch.setattr(Tracker, "retry_seconds", 0.0)
    outage = _Outage(monkeypatch, {10: True, 30: False, 40: True})
    with_toy.add_plugin(outage, "outage")
    args = ["run", "toy_autoencoder", "--dataset", "toy_blobs", "--no-progress",
            "--metrics", "mig", "--steps", "50", "--eval-every", "10", "--checkpoint-every", "10"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "tracking store" in captured.err and "training goes on" in captured.err
    assert "reachable again" in captured.err
    run_id = _runs()[0].info.run_id
    assert f"disentangle sync {run_id}" in captured.err
    assert checkpoints.load(_checkpoint(_runs()[0]))["step"] == 50  # kept locally throughout
    assert _client().get_run(run_id).info.status == "RUNNING"  # the end record is waiting

    assert main(["sync"]) == 1 and "still fails" in capsys.readouterr().out
    outage.down = False
    assert main(["sync"]) == 0
    assert f"run {run_id}:" in capsys.readouterr().out
    run = _client().get_run(run_id)
    assert run.info.status == "FINISHED"
    history = _client().get_metric_history(run_id, "eval/mig")
    assert sorted(m.step for m in history) == [10, 20, 30, 40, 50]
    assert {a.path for a in _client().list_artifacts(run_id)} >= {"samples.png", "scores.json"}
    assert main(["sync"]) == 0 and "no tracking records are waiting" in capsys.readouterr().out
    assert not run_cache(run_id).joinpath("pending").exists()


def test_a_plugin_raising_in_train_step_is_named_and_others_still_run(with_toy, capsys):
    args = ["run", "toy_autoencoder", "--dataset", "toy_blobs", "--no-progress",
            "--metrics", "", "--steps", "20", "--checkpoint-every", "5"]
    assert main([*args, "--set", "fail_at=7"]) == 1
    out = capsys.readouterr().out
    assert ("error: plugin 'toy' (toy_plugin 1.0) raised in train_step() at step 7: "
            "RuntimeError: the toy model fails on purpose") in out
    failed = _runs()[0]
    assert failed.info.status == "FAILED"
    assert checkpoints.load(_checkpoint(failed))["step"] == 5
    report = Path(failed.info.artifact_uri.removeprefix("file://")) / "error.txt"
    assert "Traceback" in report.read_text() and str(report) in out
    assert main(args) == 0


class _BrokenHook:
    @disentangle.hookimpl
    def disentangle_before_run(self, config, run_id: str) -> None:
        raise KeyError("hook state")


def test_a_plugin_raising_in_a_hook_is_named(with_toy, capsys):
    with_toy.add_plugin(_BrokenHook(), "broken_hook", "hooks-dist 0.1")
    assert main(["run", "toy_autoencoder", "--dataset", "toy_blobs", "--no-progress",
                 "--metrics", "", "--steps", "5"]) == 1
    assert ("plugin 'broken_hook' (hooks-dist 0.1) raised in disentangle_before_run(): "
            "KeyError: 'hook state'") in capsys.readouterr().out
    assert _runs()[0].info.status == "FAILED"


def test_names_from_plugins_and_users_cannot_escape_the_run_folder(with_toy, capsys):
    for bad in ("../outside", "/etc/passwd", ".hidden", "a/b", ""):
        with pytest.raises(ValueError, match="not a plain file name"):
            pictures.check_file_name(bad)
    pictures.check_file_name("continuous_0")
    with pytest.raises(UsageError, match="is not a run id"):
        run_cache("../../etc")
    assert main(["run", "--resume", "../../somewhere"]) == 2
    assert "error: no run with id '../../somewhere'" in capsys.readouterr().err


def test_a_second_resume_through_another_cache_folder_is_refused(with_toy, toy_site, capsys,
                                                                 monkeypatch, tmp_path):
    proc = _spawn(toy_site, [*RUN, "--steps", "100000"])
    try:
        _wait_for(lambda: len(_runs()) == 1 and _checkpoint(_runs()[0]).is_file(), "a checkpoint")
        run_id = _runs()[0].info.run_id
        monkeypatch.setenv("DISENTANGLE_CACHE", str(tmp_path / "another-cache"))
        assert main(["run", "--resume", run_id, "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert f"run {run_id} is being trained right now by process {proc.pid} on " in err
        assert "its lease in the tracking store lapses in" in err
    finally:
        proc.kill()
        proc.wait(timeout=30)
    # the holder is gone: its lease is free at once on its own host, and a look at the run
    # closes it instead of leaving it RUNNING
    tracker = Tracker(f"sqlite:///{Path('mlflow.db').resolve()}")
    assert settle(tracker, tracker.get_run(run_id)).info.status == "KILLED"


def test_a_lease_held_on_another_host_is_honoured_until_it_lapses(with_toy, capsys,
                                                                  monkeypatch):
    import json

    from disentangle.lease import TAG

    assert main([*RUN, "--steps", "3", "--set", "step_delay=0"]) == 0
    capsys.readouterr()
    run_id = _runs()[0].info.run_id
    lease = {"host": "another-machine", "pid": 1, "token": "t", "expires": time.time() + 30}
    _client().set_tag(run_id, TAG, json.dumps(lease))
    assert main(["run", "--resume", run_id, "--steps", "6", "--no-progress"]) == 2
    assert "by process 1 on another-machine" in capsys.readouterr().err
    _client().set_tag(run_id, TAG, json.dumps({**lease, "expires": time.time() - 1}))
    assert main(["run", "--resume", run_id, "--steps", "6", "--no-progress"]) == 0
    assert TAG not in _client().get_run(run_id).data.tags  # given back at the end


def _listening(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def test_stopping_ui_stops_the_server_it_started(workdir):
    import socket

    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "disentangle.cli", "ui", "--port", str(port),
                             "--tracking-uri", "sqlite:///ui.db"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: _listening(port), "the MLflow UI to listen", timeout=90)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        _wait_for(lambda: not _listening(port), "the server to stop", timeout=15)
    finally:
        proc.kill()
