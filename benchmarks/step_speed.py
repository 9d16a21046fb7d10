"""Training-step speed of every model on dSprites: the runner against a bare loop, and what
each CPU option buys.

For each model, with its shipped settings (fp32, its own memory format, torch's default
thread count):

1. **runner / bare.** ``--steps`` steps through the runner (:func:`disentangle.loop.train`,
   with its MLflow store, losses logged every 20 steps, a checkpoint every
   ``--checkpoint-every`` steps, the progress bar) against the same seeded steps in a bare
   loop of the same model code (sample, step, no runner), each from a fresh model,
   alternated ``--repeats`` times with the order swapped each time. The ratio is the median
   over the alternations of the runner's timing over the bare loop's next to it: the
   machine's speed drifts by several percent over minutes, and each pair shares its moment
   (the ratio of the best timings is printed beside it). The runner's time is that of its
   training: from the run's first step (timed by a plugin on the run's hooks) to the moment
   it has handed its last checkpoint to the background writer, so it holds every step with
   its logging, its checkpoints' host copies and the earlier checkpoints' writes running
   beside the steps. Not counted are the run's creation in the store, its closing pictures
   and the wait for that last write, which a longer run does not repeat; the wait is
   reported on its own. On a shared CPU one timing can stray by a tenth either way, so
   beside the ratio stands the runner's own share measured inside its runs: the part of
   their time spent outside the model's steps and the batches' sampling (the same steps, so
   free of that noise).
2. **options.** Milliseconds per step of the bare loop, alternated in rounds, for the
   shipped model and with one thing changed: the other memory format (channels-last or
   not), bf16 autocast, one thread instead of all, and with ``--compile`` also
   ``torch.compile``. The host allocator's setting
   (:func:`disentangle.device.keep_freed_host_memory`, which the runner applies and which
   this benchmark applies for both of its loops) is process-wide and cannot be undone, so
   glibc's malloc as it comes is timed in a fresh process of its own, after the rounds.
   Beside each, the largest difference of its losses from the shipped model's over the
   same seeded steps, relative to each loss's magnitude: the equality a kept option must
   show (bf16 is an opt-in precision, so its losses differ by its rounding).

Run on a quiet machine (or read only the ratios, which are measured interleaved):
``python benchmarks/step_speed.py --out benchmarks/results/step_speed.txt`` (about 40
minutes on 2 CPU cores); ``--models vae,gan --steps 50`` is a quick look.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

import disentangle
from disentangle.config import RunConfig
from disentangle.device import keep_freed_host_memory
from disentangle.loop import read_losses, seed_step, train
from disentangle.models import Model
from disentangle.plan import Plan, plan_new
from disentangle.precision import autocast
from disentangle.registry import get_registry
from disentangle.run import build_model, new_run
from disentangle.tracking import Tracker


def plan_for(model: str, steps: int, checkpoint_every: int, device: str = "cpu",
             **settings: object) -> Plan:
    config = RunConfig(model=model, dataset="dsprites", seed=0, steps=steps, metrics=(),
                       device=device, checkpoint_every=checkpoint_every,
                       experiment="step_speed", **settings)
    return plan_new(config, {}, get_registry())


def bare_steps(plan: Plan, model: Model, steps: int) -> list[dict[str, float]]:
    """The runner's loop with the runner taken out: seeded batch, step; the losses read
    once at the end."""
    s, losses = plan.settings, []
    for step in range(steps):
        images, factors = plan.dataset.sample(s.batch_size, seed_step(s.seed, step),
                                              model.device)
        with autocast(s.precision, model.device):
            losses.append(model.train_step(images, factors, step))
    return read_losses(losses)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bare_seconds(plan: Plan, model: Model, steps: int) -> float:
    return timed(lambda: bare_steps(plan, model, steps))


class Stopwatch:
    """A plugin marking a run's training on the clock: its before-run hook, and its last
    after-eval hook, which (with no metrics) fires once, after the last checkpoint is on
    disk."""

    def __init__(self) -> None:
        self.started = self.stopped = 0.0

    @disentangle.hookimpl
    def disentangle_before_run(self, config: RunConfig, run_id: str) -> None:
        self.started = time.perf_counter()

    @disentangle.hookimpl
    def disentangle_after_eval(self, run_id: str, step: int, scores: dict) -> None:
        self.stopped = time.perf_counter()


_STOPWATCH = Stopwatch()


class _Clock:
    """Sums the seconds spent in the calls it wraps."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, fn: Callable[..., object]) -> Callable[..., object]:
        def timed_call(*args: object, **kwargs: object) -> object:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
        return timed_call


def runner_seconds(model: str, steps: int, checkpoint_every: int, folder: Path,
                   device: str) -> tuple[float, float, float]:
    """Seconds of the training of one fresh runner run of ``steps`` steps, logged to a
    store in ``folder``, up to its wait for the last checkpoint's write (see the module
    docstring); the seconds of it spent in the model's steps and the dataset's sampling;
    and the seconds of that closing wait."""
    registry = get_registry()
    if not registry.manager.is_registered(_STOPWATCH):
        registry.add_plugin(_STOPWATCH, "step_speed_stopwatch")
    plan = plan_for(model, steps, checkpoint_every, device)
    tracker = Tracker(f"sqlite:///{folder / 'mlflow.db'}")
    run = new_run(plan, registry, tracker, echo=lambda line: None)
    in_steps = _Clock()
    run.model.train_step = in_steps.wrap(run.model.train_step)
    run.plan.dataset.sample = in_steps.wrap(run.plan.dataset.sample)
    waits: list[float] = []  # when the run began each wait for a write (the loop ends first)
    wait = run.wait_checkpoint

    def timed_wait() -> None:
        waits.append(time.perf_counter())
        wait()

    run.wait_checkpoint = timed_wait
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        train(run, echo=lambda line: None, progress=True)
    if tracker.get_run(run.run_id).info.status != "FINISHED":
        sys.exit(f"the runner did not finish {model}'s run")
    return (waits[0] - _STOPWATCH.started, in_steps.seconds,
            _STOPWATCH.stopped - waits[0])


@dataclass
class RunnerTiming:
    """Seconds of each timed run of the runner and of the bare loop, and per runner run
    its own share of the time and its wait for the last checkpoint's write."""

    steps: int
    runner: list[float]
    bare: list[float]
    shares: list[float]
    closing: list[float]

    @property
    def runner_ms(self) -> float:
        """Milliseconds per step of the best runner run."""
        return 1000 * min(self.runner) / self.steps

    @property
    def bare_ms(self) -> float:
        return 1000 * min(self.bare) / self.steps

    @property
    def ratio(self) -> float:
        """The median of the alternations' runner / bare ratios."""
        return statistics.median(r / b for r, b in zip(self.runner, self.bare))

    def line(self, model: str) -> str:
        return (f"{model}: runner {self.runner_ms:.1f} ms/step, bare {self.bare_ms:.1f} "
                f"ms/step (best of each), ratio {self.ratio:.3f} (median of "
                f"{len(self.runner)} pairs; of the best {self.runner_ms / self.bare_ms:.3f})"
                f"; the runner's own share of its time "
                f"{100 * statistics.median(self.shares):.1f}%; the closing write's wait "
                f"{1000 * statistics.median(self.closing):.0f} ms once per run")


def runner_against_bare(model: str, steps: int, checkpoint_every: int, repeats: int,
                        device: str = "cpu") -> RunnerTiming:
    """``steps`` steps of the runner (:func:`runner_seconds`) and of the bare loop, each
    from a freshly built model (so both include the first step's warm-up), alternated
    ``repeats`` times with the order swapped each time (so neither always runs after the
    other)."""
    plan = plan_for(model, steps, checkpoint_every, device)
    runner, bare, shares, closing = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)  # the runs' checkpoints and artifacts live beside their store
        try:
            for i in range(repeats):
                for kind in ("runner", "bare") if i % 2 == 0 else ("bare", "runner"):
                    if kind == "runner":
                        total, in_steps, wait = runner_seconds(
                            model, steps, checkpoint_every, Path(tmp), device)
                        runner.append(total)
                        shares.append(1 - in_steps / total)
                        closing.append(wait)
                    else:
                        built = build_model(plan, torch.device(device))
                        bare.append(bare_seconds(plan, built, steps))
        finally:
            os.chdir(cwd)
    return RunnerTiming(steps, runner, bare, shares, closing)


def variants(model: str, with_compile: bool, device: str = "cpu"
             ) -> dict[str, Callable[[], tuple[Plan, Model]]]:
    """The shipped model and one change each, as builders of (plan, model)."""
    cls = get_registry().model(model)

    def make(precision: str = "fp32", flip_format: bool = False,
             compile: bool = False) -> Callable[[], tuple[Plan, Model]]:
        def build() -> tuple[Plan, Model]:
            plan = plan_for(model, 1, 1, device, precision=precision, compile=compile)
            built = build_model(plan, torch.device(device))
            if flip_format:
                memory = (torch.contiguous_format if cls.channels_last
                          else torch.channels_last)
                built.to(memory_format=memory)
            return plan, built
        return build

    other = "contiguous" if cls.channels_last else "channels-last"
    out = {"shipped": make(), other: make(flip_format=True), "bf16": make(precision="bf16")}
    if with_compile:
        out["compiled"] = make(compile=True)
    return out


def largest_difference(losses: list[dict[str, float]], reference: list[dict[str, float]]
                       ) -> float:
    """The largest difference of a loss from the reference's at the same step, relative to
    that loss's largest magnitude over the steps (a loss passing near zero does not make
    a rounding difference look large)."""
    return max(max(abs(a[k] - b[k]) for a, b in zip(losses, reference))
               / max(max(abs(b[k]) for b in reference), 1e-12) for k in reference[0])


def allocator_as_it_comes(model: str, steps: int, rounds: int
                          ) -> tuple[float, list[dict[str, float]]]:
    """Seconds per step (best of ``rounds``) and the losses of the shipped model's bare
    loop in a fresh process whose allocator is left as it comes (``--allocator-child``)."""
    done = subprocess.run([sys.executable, __file__, "--allocator-child", model,
                           "--option-steps", str(steps), "--rounds", str(rounds)],
                          capture_output=True, text=True, check=True)
    found = json.loads(done.stdout.splitlines()[-1])
    return found["seconds"], found["losses"]


def allocator_child(model: str, steps: int, rounds: int) -> None:
    """The child of :func:`allocator_as_it_comes`: print its answer as one JSON line."""
    plan, built = variants(model, with_compile=False)["shipped"]()
    losses = bare_steps(plan, built, steps)  # also the warm-up
    seconds = min(bare_seconds(plan, built, steps) / steps for _ in range(rounds))
    print(json.dumps({"seconds": seconds, "losses": losses}))


def options(model: str, steps: int, rounds: int, with_compile: bool,
            device: str = "cpu") -> list[str]:
    """Rows ``name  ms/step  speed-up  largest relative loss difference`` of the options
    (on the CPU also one thread against all)."""
    built = {name: build() for name, build in variants(model, with_compile, device).items()}
    first = {name: bare_steps(plan, m, steps) for name, (plan, m) in built.items()}  # warm-up
    times: dict[str, list[float]] = {name: [] for name in built}
    threads, on_cpu = torch.get_num_threads(), device == "cpu"
    one_thread = f"1 thread (not {threads})"
    if on_cpu:
        times[one_thread] = []
    for _ in range(rounds):
        for name, (plan, m) in built.items():
            times[name].append(bare_seconds(plan, m, steps) / steps)
        if on_cpu:
            plan, m = built["shipped"]
            torch.set_num_threads(1)
            times[one_thread].append(bare_seconds(plan, m, steps) / steps)
            torch.set_num_threads(threads)
    if on_cpu:
        seconds, losses = allocator_as_it_comes(model, steps, rounds)
        times["malloc as it comes"], first["malloc as it comes"] = [seconds], losses
    base = min(times["shipped"])
    rows = []
    for name, values in times.items():
        diff = f"  {largest_difference(first[name], first['shipped']):.1e}" if name in first else ""
        rows.append(f"    {name:<22}{1000 * min(values):8.1f} ms  {base / min(values):5.2f}x"
                    + diff)
    return rows


def main() -> None:
    registry = get_registry()
    models = sorted(registry.entries["model"])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(models),
                        help="comma-separated (default: every registered model)")
    parser.add_argument("--steps", type=int, default=40,
                        help="steps of each timed runner run and bare loop")
    parser.add_argument("--checkpoint-every", type=int, default=20,
                        help="the runner's checkpoint interval (its default is 250)")
    parser.add_argument("--repeats", type=int, default=7, help="runner/bare alternations")
    parser.add_argument("--option-steps", type=int, default=10,
                        help="steps per timing of an option")
    parser.add_argument("--rounds", type=int, default=3, help="timings per option")
    parser.add_argument("--compile", action="store_true",
                        help="also time torch.compile (compiling takes minutes per model)")
    parser.add_argument("--out", type=Path, help="also write the report here")
    parser.add_argument("--allocator-child", metavar="MODEL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.allocator_child:
        allocator_child(args.allocator_child, args.option_steps, args.rounds)
        return
    kept = keep_freed_host_memory()
    chosen = [m for m in args.models.split(",") if m]
    unknown = sorted(set(chosen) - set(models))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(models)}")
    lines = [f"disentangle {disentangle.__version__}, torch {torch.__version__}, Python "
             f"{platform.python_version()}, {os.cpu_count()} CPUs, "
             f"{torch.get_num_threads()} torch threads, host allocator "
             f"{'keeping freed memory' if kept else 'as it comes'}; load average "
             f"{os.getloadavg()[0]:.2f} at the start",
             f"runner: {args.steps} steps, checkpoint every "
             f"{args.checkpoint_every}, {args.repeats} alternations with the bare loop; "
             f"options: best of "
             f"{args.rounds} x {args.option_steps} steps", ""]
    print("\n".join(lines), flush=True)

    def emit(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    for model in chosen:
        emit(runner_against_bare(model, args.steps, args.checkpoint_every,
                                 args.repeats).line(model))
        for row in options(model, args.option_steps, args.rounds, args.compile):
            emit(row)
    emit(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
