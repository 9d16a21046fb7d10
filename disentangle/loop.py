"""The training loop: one run, on one device, to its last step.

Every random draw of step ``t`` is seeded from ``(seed, t)`` alone, so a run resumed from the
checkpoint of step ``t`` continues exactly as the uninterrupted run would have (on CPU, bit
for bit). The loop itself is deliberately plain: sample a batch, take a step, log,
checkpoint, evaluate.
"""

from __future__ import annotations

import math
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from disentangle import artifacts
from disentangle.device import keep_freed_host_memory
from disentangle.errors import DivergenceError, PluginError, UsageError
from disentangle.evaluation import Evaluation
from disentangle.precision import autocast
from disentangle.run import Run

#: steps timed (after one warm-up step) for the estimate of the training time
_TIMED_STEPS = 10


def seed_step(seed: int, step: int) -> np.random.Generator:
    """Seed torch for step ``step`` and return that step's numpy generator."""
    torch.manual_seed((seed * 1_000_003 + step) % (1 << 63))
    return np.random.default_rng([seed, step])


@dataclass
class RunResult:
    """How a run ended and what its last evaluation found."""

    run_id: str
    status: str
    step: int
    evaluation: Evaluation = field(default_factory=Evaluation)
    seconds: float = 0.0

    @property
    def scores(self) -> dict[str, float]:
        return self.evaluation.scores

    @property
    def skipped(self) -> dict[str, str]:
        return self.evaluation.skipped


class _StopRequest:
    """What Ctrl-C (SIGINT) and SIGTERM do while a run trains.

    While training (``mode`` "train") the first one requests a clean stop after the current
    step, and a second interrupts at once. In the final evaluation ("evaluate"), when the
    last checkpoint is already written, one interrupts at once. While the run's record is
    being closed ("close") they are held off, so the record is never left half-written.
    """

    signals = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self.mode = "train"

    @contextmanager
    def installed(self) -> Iterator[None]:
        def handler(signum: int, frame: Any) -> None:
            if self.mode == "close":
                return
            if self.requested or self.mode == "evaluate":
                raise KeyboardInterrupt
            self.requested = True

        try:
            previous = {sig: signal.signal(sig, handler) for sig in self.signals}
        except ValueError:  # not the main thread: leave the signals as they are
            yield
            return
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


def train(run: Run, echo: Callable[[str], None] = print, progress: bool = True) -> RunResult:
    """Train ``run`` to its last step, evaluate it and close it (also on Ctrl-C or NaN).

    The host's allocator is first set to keep freed memory for the next step
    (:func:`~disentangle.device.keep_freed_host_memory`). The run's lock is held
    throughout. A reopened run is marked running again and logs no metric at a step where
    the store already has it (the steps between its checkpoint and where it stopped are
    trained again, to the same values). A reopened run that stopped at its last step,
    before or during its final evaluation, is finished: evaluated, its pictures and scores
    written. A finished run is refused (pass larger ``steps`` to extend it).
    """
    s = run.plan.settings
    logged: dict[str, int] = {}
    if run.resumed:
        finished = run.tracker.get_run(run.run_id).info.status == "FINISHED"
        if s.steps < run.step or (s.steps == run.step and finished):
            raise UsageError(f"run {run.run_id} already completed {run.step} of {s.steps} "
                             f"steps; pass a larger --steps to extend it")
        logged = run.tracker.logged_steps(run.run_id)
    keep_freed_host_memory()
    stop, started = _StopRequest(), time.perf_counter()
    status, result = "FAILED", Evaluation()
    with stop.installed():
        run.lock.acquire()
        if run.resumed:
            run.tracker.reopen(run.run_id)
            echo(f"resuming run {run.run_id} at step {run.step} of {s.steps} on {run.device}")
        try:
            run.registry.notify("disentangle_before_run", config=s, run_id=run.run_id)
            result = _loop(run, stop, progress, logged, echo)
            if run.saved != run.step:  # (the loop may have just written it)
                run.save_checkpoint()
            run.wait_checkpoint()
            if stop.requested:
                status = "KILLED"
                echo(f"\ninterrupted: checkpoint saved at step {run.step}; continue with "
                     f"`disentangle run --resume {run.run_id}`")
            else:
                stop.mode = "evaluate"
                echo("evaluating...")
                result = artifacts.log_evaluation(run, echo, progress=progress,
                                                  logged=logged)
                artifacts.log_final(run, result)
                status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            _settle(run)
            kept = (f"kept the checkpoint of step {run.kept}" if run.kept is not None
                    else "no checkpoint was written yet, so it starts again from step 0")
            echo(f"\ninterrupted: {kept}; continue with `disentangle run --resume {run.run_id}`")
        except DivergenceError as exc:
            _settle(run)
            kept = (f"the last good checkpoint, of step {run.kept}, is kept at {run.checkpoint}"
                    if run.kept is not None else "no checkpoint was written before it")
            echo(f"\nerror: {exc}; {kept}. Lower the learning rates or check the data.")
        except (MemoryError, torch.OutOfMemoryError, PluginError) as exc:
            if _out_of_memory(exc):
                echo(f"\nerror: out of memory on {run.device} at step {run.step + 1} with "
                     f"batch size {s.batch_size:,}; lower --batch-size. The run is marked "
                     "failed.")
            else:
                report = run.checkpoint.parent.parent / "error.txt"
                report.parent.mkdir(parents=True, exist_ok=True)
                report.write_text(traceback.format_exc())
                echo(f"\nerror: {exc}\nThe run is marked failed; its last checkpoint is "
                     f"kept at {run.checkpoint}; the full traceback is in {report}.")
        finally:
            stop.mode = "close"
            _settle(run)
            run.tracker.end(run.run_id, status)
            run.lock.release()
    return RunResult(run.run_id, status, run.step, result, time.perf_counter() - started)


def _loop(run: Run, stop: _StopRequest, progress: bool, logged: dict[str, int],
          echo: Callable[[str], None]) -> Evaluation:
    """Steps until the last one or a stop request; returns the last periodic evaluation.

    Metrics the store already holds at a step (``logged``: key -> last step) are not logged
    again, and a periodic evaluation already logged at its step is not repeated. One that is
    due at the step the run resumes from (it stopped after that step's checkpoint, before
    or during its evaluation) is made first.
    """
    s, registry, window = run.plan.settings, run.registry, run.window
    evaluated_through = max((step for k, step in logged.items() if k.startswith("eval/")),
                            default=-1)

    def evaluation_due() -> bool:
        return (run.step % s.eval_every == 0 and 0 < run.step < s.steps
                and run.step > evaluated_through)

    last = Evaluation()
    bar = tqdm(total=s.steps, initial=run.step, disable=not progress,
               desc=f"{s.model} on {s.dataset}", unit="step", dynamic_ncols=True)
    unchecked: list[dict[str, Any]] = []  # the losses of the steps since the last check

    def say(line: str) -> None:
        """``echo`` with the progress bar cleared while the line is printed."""
        with bar.external_write_mode():
            echo(line)

    timed_from, timed_steps = None, 0

    def check() -> None:
        """Read the unchecked losses (one transfer from the device) into the window, or
        stop at the first that is NaN or infinite."""
        values = read_losses(unchecked)
        first = run.step - len(unchecked)
        for offset, losses in enumerate(values):
            for key, value in losses.items():
                if not math.isfinite(value):
                    raise DivergenceError.loss(key, first + offset + 1, value)
                window.setdefault(key, []).append(value)
        if values:
            bar.set_postfix({k: f"{v:.3g}" for k, v in values[-1].items()}, refresh=False)
        unchecked.clear()

    with bar:
        if evaluation_due() and s.metrics:  # (with no metrics it left nothing to restore)
            last = artifacts.log_evaluation(run, say, progress=progress)
        while run.step < s.steps and not stop.requested:
            rng = seed_step(s.seed, run.step)
            with registry.blame("dataset", s.dataset, f"sample() at step {run.step + 1}"):
                images, factors = run.plan.training.sample(s.batch_size, rng, run.device)
            with registry.blame("model", s.model, f"train_step() at step {run.step + 1}"), \
                    autocast(s.precision, run.device):
                unchecked.append(run.model.train_step(images, factors, run.step))
            run.step += 1
            bar.update(1)
            timed_steps += 1
            if timed_steps in (1, _TIMED_STEPS + 1):  # the timing waits for the device
                check()
                timed_from = timed_from or time.perf_counter()
            if timed_steps == _TIMED_STEPS + 1:
                per_step = (time.perf_counter() - timed_from) / _TIMED_STEPS
                say(f"estimated training time: {_duration(per_step * s.steps)} for "
                          f"{s.steps} steps ({per_step * 1000:.0f} ms/step on "
                          f"{run.device}), plus evaluation")
            log_due = run.step % s.log_every == 0 or run.step == s.steps
            checkpoint_due = run.step % s.checkpoint_every == 0
            if log_due or checkpoint_due or evaluation_due():
                check()
            if log_due:
                means = {f"train/{k}": float(np.mean(v)) for k, v in window.items()}
                fresh = {k: v for k, v in means.items() if logged.get(k, -1) < run.step}
                if fresh:
                    run.tracker.log_metrics(run.run_id, fresh, run.step)
                window.clear()
            if checkpoint_due:
                run.save_checkpoint()
            if evaluation_due():
                last = artifacts.log_evaluation(run, say, progress=progress)
        check()  # a stop request: the checkpoint written next holds only checked steps
    return last


def _settle(run: Run) -> None:
    """Let a checkpoint still being written finish, so ``run.kept`` names the last one on
    disk; an error of that write is dropped, since the run is already ending on an error
    of its own (and the earlier checkpoint stays)."""
    with suppress(Exception):
        run.wait_checkpoint()


def read_losses(steps: list[dict[str, Any]]) -> list[dict[str, float]]:
    """The losses of several steps as floats, each step's in its own dict.

    Tensors (what models return, so that a step never waits for the device) are read in one
    transfer; plain numbers are taken as they are.
    """
    tensors = [v for losses in steps for v in losses.values() if isinstance(v, torch.Tensor)]
    if tensors:
        device = tensors[0].device
        read = iter(torch.stack([t.detach().reshape(()).to(device, torch.float32)
                                 for t in tensors]).tolist())
    return [{k: next(read) if isinstance(v, torch.Tensor) else float(v)
             for k, v in losses.items()} for losses in steps]


def _out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` (or the plugin error it caused) is an allocation failing."""
    error = exc.error if isinstance(exc, PluginError) else exc
    return isinstance(error, (MemoryError, torch.OutOfMemoryError)) or (
        isinstance(error, RuntimeError) and "can't allocate memory" in str(error))


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"
