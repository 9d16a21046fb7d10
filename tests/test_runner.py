"""The training loop: determinism, exact resume after Ctrl-C, checkpoints, devices."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

import disentangle
from disentangle import checkpoints
from disentangle.cli import main
from disentangle.device import resolve_device
from disentangle.errors import UsageError
from disentangle.metrics import Metric
from disentangle.run import CHECKPOINT

TOY = ["toy_autoencoder", "--dataset", "toy_blobs", "--no-progress", "--metrics", ""]


def _runs(store: Path) -> list:
    client = MlflowClient(f"sqlite:///{store.resolve()}")
    experiment = client.get_experiment_by_name("toy_blobs")
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time"])


def _weights(run) -> dict[str, torch.Tensor]:
    path = Path(run.info.artifact_uri.removeprefix("file://")) / CHECKPOINT
    return checkpoints.load(path)["model"]["modules"]


class _InterruptAtEval:
    """A plugin whose after-eval hook presses Ctrl-C once, at a chosen step."""

    def __init__(self, step: int):
        self.step = step

    @disentangle.hookimpl
    def disentangle_after_eval(self, run_id: str, step: int, scores: dict) -> None:
        if step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_then_resume_gives_the_uninterrupted_weights(with_toy, capsys):
    assert main(["run", *TOY, "--steps", "60", "--seed", "3"]) == 0
    with_toy.add_plugin(_InterruptAtEval(25), "interrupter")
    assert main(["run", *TOY, "--steps", "60", "--seed", "3", "--eval-every", "25",
                 "--checkpoint-every", "1000"]) == 130
    out = capsys.readouterr().out
    assert "interrupted: checkpoint saved at step 25" in out
    straight, interrupted = _runs(Path("mlflow.db"))
    assert MlflowClient(f"sqlite:///{Path('mlflow.db').resolve()}").get_run(
        interrupted.info.run_id).info.status == "KILLED"
    assert main(["run", "--resume", interrupted.info.run_id, "--no-progress"]) == 0
    assert f"resuming run {interrupted.info.run_id} at step 25 of 60" in capsys.readouterr().out
    resumed = MlflowClient(f"sqlite:///{Path('mlflow.db').resolve()}").get_run(
        interrupted.info.run_id)
    assert resumed.info.status == "FINISHED"
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # a different seed gives different weights: the comparison above can fail
    assert main(["run", *TOY, "--steps", "60", "--seed", "4"]) == 0
    other = _runs(Path("mlflow.db"))[-1]
    assert not torch.equal(_weights(other)["encoder.weight"], a["encoder.weight"])


class _InterruptingMetric:
    """A metric plugin whose first score is stopped by Ctrl-C (a stop in the final
    evaluation, where one signal interrupts at once: KeyboardInterrupt)."""

    def __init__(self) -> None:
        self.pressed = False

    def score(self, observer, rng) -> dict:
        if not self.pressed:
            self.pressed = True
            raise KeyboardInterrupt
        return {"interrupt": 1.0}

    @disentangle.hookimpl
    def disentangle_register_metrics(self) -> list:
        return [Metric("interrupt", "presses Ctrl-C once", lambda: {}, self.score)]


def test_a_run_stopped_in_its_final_evaluation_is_finished_by_resume(with_toy, capsys):
    with_toy.add_plugin(_InterruptingMetric(), "interrupting")
    assert main(["run", *TOY, "--steps", "20", "--metrics", "interrupt"]) == 130
    assert "interrupted: kept the checkpoint of step 20; continue with" in \
        capsys.readouterr().out
    client = MlflowClient(f"sqlite:///{Path('mlflow.db').resolve()}")
    stopped = _runs(Path("mlflow.db"))[0]
    assert stopped.info.status == "KILLED" and "eval/interrupt" not in stopped.data.metrics
    assert main(["run", "--resume", stopped.info.run_id, "--no-progress"]) == 0
    assert "finished at step 20" in capsys.readouterr().out
    run = client.get_run(stopped.info.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["eval/interrupt"] == 1.0
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"samples.png",
                                                                         "scores.json"}
    assert len(client.get_metric_history(run.info.run_id, "train/reconstruction")) == 1
    assert main(["run", "--resume", stopped.info.run_id]) == 2
    assert "already completed 20 of 20 steps" in capsys.readouterr().err


class _FailOnceAtEval:
    """A plugin whose after-eval hook raises once, at a chosen step (the run stops there,
    past its last checkpoint)."""

    def __init__(self, step: int):
        self.step, self.failed = step, False

    @disentangle.hookimpl
    def disentangle_after_eval(self, run_id: str, step: int, scores: dict) -> None:
        if step == self.step and not self.failed:
            self.failed = True
            raise RuntimeError("stop here")


def test_steps_trained_again_after_a_resume_are_not_logged_twice(with_toy, capsys):
    args = [*TOY, "--steps", "60", "--metrics", "mig", "--eval-every", "20",
            "--checkpoint-every", "15"]
    assert main(["run", *args]) == 0
    with_toy.add_plugin(_FailOnceAtEval(20), "failing")
    assert main(["run", *args]) == 1  # stops at step 20, its checkpoint is step 15's
    straight, stopped = _runs(Path("mlflow.db"))
    assert main(["run", "--resume", stopped.info.run_id, "--no-progress"]) == 0
    client = MlflowClient(f"sqlite:///{Path('mlflow.db').resolve()}")
    for key in ("train/reconstruction", "eval/mig"):
        ours = [(m.step, m.value) for m in client.get_metric_history(stopped.info.run_id, key)]
        theirs = [(m.step, m.value) for m in
                  client.get_metric_history(straight.info.run_id, key)]
        assert sorted(ours) == sorted(theirs), key
    assert [m.step for m in client.get_metric_history(stopped.info.run_id, "eval/mig")] \
        == [20, 40, 60]


def test_resume_refuses_changes_and_finished_runs(with_toy, capsys):
    assert main(["run", *TOY, "--steps", "20"]) == 0
    run_id = _runs(Path("mlflow.db"))[0].info.run_id
    assert main(["run", "--resume", run_id]) == 2
    assert "already completed 20 of 20 steps" in capsys.readouterr().err
    assert main(["run", "--resume", run_id, "--set", "lr=0.1"]) == 2
    assert "--set cannot change the hyper-parameters" in capsys.readouterr().err
    assert main(["run", "infogan", "--resume", run_id]) == 2
    assert "trained model 'toy_autoencoder', not 'infogan'" in capsys.readouterr().err
    assert main(["run", "--resume", run_id, "--steps", "30", "--no-progress"]) == 0
    assert "finished at step 30" in capsys.readouterr().out


def test_divergence_stops_the_run_and_keeps_the_last_good_checkpoint(with_toy, capsys):
    assert main(["run", *TOY, "--steps", "50", "--checkpoint-every", "10",
                 "--set", "diverge_at=25"]) == 1
    out = capsys.readouterr().out
    assert "error: loss 'reconstruction' diverged at step 25 (value nan)" in out
    run = _runs(Path("mlflow.db"))[0]
    assert run.info.status == "FAILED"
    state = checkpoints.load(Path(run.info.artifact_uri.removeprefix("file://"))
                             / CHECKPOINT)
    assert state["step"] == 20
    assert all(torch.isfinite(t).all() for t in state["model"]["modules"].values())


def test_losses_are_read_once_per_window_not_once_per_step(with_toy, capsys, monkeypatch):
    from disentangle import loop

    reads = []
    real = loop.read_losses

    def counted(steps):
        reads.append(len(steps))
        return real(steps)

    monkeypatch.setattr(loop, "read_losses", counted)
    assert main(["run", *TOY, "--steps", "60", "--checkpoint-every", "30",
                 "--eval-every", "1000", "--no-progress"]) == 0
    # the first and eleventh steps are read alone (the time estimate waits for them), then
    # one read per logging window of 20 steps or checkpoint of 30; the last call finds none
    assert reads == [1, 10, 9, 10, 10, 20, 0]


def test_a_divergence_in_a_window_names_its_first_bad_step(with_toy, capsys):
    assert main(["run", *TOY, "--steps", "50", "--checkpoint-every", "40",
                 "--set", "diverge_at=33"]) == 1
    out = capsys.readouterr().out
    # read at step 40, before its checkpoint: the one of step 40 is never written
    assert "loss 'reconstruction' diverged at step 33 (value nan); no checkpoint was " \
        "written before it" in out


def test_read_losses_takes_tensors_and_numbers():
    from disentangle.loop import read_losses

    steps = [{"a": torch.tensor(1.5), "b": 2}, {"a": torch.tensor(float("nan"))},
             {"c": torch.tensor(3.0, dtype=torch.float64), "b": 0.25}]
    values = read_losses(steps)
    assert values[0] == {"a": 1.5, "b": 2.0} and values[2] == {"c": 3.0, "b": 0.25}
    assert list(values[1]) == ["a"] and values[1]["a"] != values[1]["a"]
    assert read_losses([]) == [] and read_losses([{"x": 1}]) == [{"x": 1.0}]


def test_real_ctrl_c_in_a_subprocess(toy_site, workdir):
    env = {**os.environ, "PYTHONPATH": str(toy_site), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "disentangle.cli", "run", *TOY, "--steps", "200000",
         "--checkpoint-every", "100000"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        if "estimated training time" in line or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "interrupted: checkpoint saved at step" in out and "Traceback" not in out
    run = _runs(Path("mlflow.db"))[0]
    assert run.info.status == "KILLED"
    assert checkpoints.load(Path(run.info.artifact_uri.removeprefix("file://"))
                            / CHECKPOINT)["step"] > 0


def test_checkpoints_refuse_pickled_code_and_torn_files(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"format": checkpoints.FORMAT, "payload": _Payload()}, evil)
    with pytest.raises(UsageError, match="refusing to load .* other than tensors"):
        checkpoints.load(evil)
    good = tmp_path / "good.pt"
    checkpoints.save(good, {"step": 3, "w": torch.ones(100)})
    assert checkpoints.load(good)["step"] == 3
    torn = tmp_path / "torn.pt"
    torn.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(UsageError, match="corrupt or truncated"):
        checkpoints.load(torn)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


class _Payload:
    def __reduce__(self):
        return (print, ("this would run at load time",))


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and torch.backends.mps.is_available():
        expected = "mps"
    assert resolve_device("auto").type == expected
    with pytest.raises(UsageError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")


_FREE_HEAP_AFTER_A_STEP = """
import ctypes, sys, torch
from disentangle.device import keep_freed_host_memory
applied = keep_freed_host_memory() if sys.argv[1] == "keep" else False
fields = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
          "uordblks", "fordblks", "keepcost")
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in fields]
libc = ctypes.CDLL("libc.so.6")
if not hasattr(libc, "mallinfo2"):  # glibc before 2.33
    print("unreadable 0")
    sys.exit()
libc.mallinfo2.restype = Info
blocks = [torch.ones(2 << 20) for _ in range(10)]  # a step's 10 x 8 MiB of temporaries
del blocks
print(applied, libc.mallinfo2().fordblks >> 20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_the_runner_keeps_freed_host_memory_for_the_next_step():
    """Megabyte-sized blocks a step frees stay in the heap, for the next step to reuse
    without faulting them in again; under glibc's defaults they go back to the kernel."""
    def free_in_heap(mode: str) -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", _FREE_HEAP_AFTER_A_STEP, mode],
                             check=True, capture_output=True, text=True).stdout.split()
        return out[0], int(out[1])

    applied, kept = free_in_heap("keep")
    if applied == "unreadable":
        pytest.skip("this glibc has no mallinfo2 to read the heap with")
    if applied != "True":
        pytest.skip("not glibc: the setting does not apply")
    _, as_it_comes = free_in_heap("default")
    assert kept >= 80 > as_it_comes, (kept, as_it_comes)


def test_a_run_stopped_in_a_periodic_evaluation_makes_it_when_resumed(with_toy, capsys):
    """Killed after the checkpoint of step 10 but before that step's evaluation was logged:
    the resumed run evaluates step 10 first, so its record misses nothing."""
    with_toy.add_plugin(_InterruptingMetric(), "interrupting")
    assert main(["run", *TOY, "--steps", "20", "--metrics", "interrupt", "--eval-every", "10",
                 "--checkpoint-every", "10"]) == 130
    stopped = _runs(Path("mlflow.db"))[0]
    assert main(["run", "--resume", stopped.info.run_id, "--no-progress"]) == 0
    client = MlflowClient(f"sqlite:///{Path('mlflow.db').resolve()}")
    history = client.get_metric_history(stopped.info.run_id, "eval/interrupt")
    assert sorted(m.step for m in history) == [10, 20]


def test_every_line_of_a_run_goes_through_its_echo(with_toy, capsys):
    """The time estimate and the periodic scores reach the caller's ``echo`` (which may
    prefix or silence them), not the terminal directly, also with the progress bar on."""
    from disentangle.config import RunConfig
    from disentangle.loop import train
    from disentangle.plan import plan_new
    from disentangle.run import new_run
    from disentangle.tracking import Tracker

    config = RunConfig(model="toy_autoencoder", dataset="toy_blobs", steps=30, eval_every=15,
                       metrics=("mig",), device="cpu")
    plan = plan_new(config, {}, with_toy)
    tracker = Tracker(f"sqlite:///{Path('mlflow.db').resolve()}")
    lines: list[str] = []
    run = new_run(plan, with_toy, tracker, echo=lines.append)
    assert train(run, echo=lines.append, progress=True).status == "FINISHED"
    assert any(line.startswith("estimated training time: ") for line in lines)
    assert any(line.startswith("step 15: mig ") for line in lines), lines
    out = capsys.readouterr().out
    assert "estimated training time" not in out and "mig" not in out
