"""Training-step speed of every model on dSprites: the runner against a bare loop, and what
each CPU option buys.

For each model, with its shipped settings (fp32, its own memory format, torch's default
thread count):

1. **runner / bare.** Steps through the runner (:func:`disentangle.loop.train`, with its
   MLflow store, losses logged every 20 steps, a checkpoint every ``--checkpoint-every``
   steps, the progress bar) against the same seeded steps in a bare loop of the same model
   code (sample, step, no runner), alternated ``--repeats`` times; the ratio of the
   medians. Each time per step is the difference between ``2 * --steps`` and ``--steps``
   steps, so the run's start-up and closing (its final checkpoint and pictures) and the
   first steps' warm-up cancel out: it is what the runner adds to every step.
2. **options.** Milliseconds per step of the bare loop, alternated in rounds, for the
   shipped model and with one thing changed: the other memory format (channels-last or
   not), bf16 autocast, one thread instead of all, and with ``--compile`` also
   ``torch.compile``. Beside each, the largest difference of its losses from the shipped
   model's over the same seeded steps, relative to each loss's magnitude: the equality a
   kept option must show (bf16 is an opt-in precision, so its losses differ by its
   rounding).

Run on a quiet machine (or read only the ratios, which are measured interleaved):
``python benchmarks/step_speed.py`` (about 25 minutes on 2 CPU cores) writes
``results/step_speed.txt``; ``--models vae,gan --steps 50`` is a quick look.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

import disentangle
from disentangle.config import RunConfig
from disentangle.loop import read_losses, seed_step, train
from disentangle.models import Model
from disentangle.plan import Plan, plan_new
from disentangle.precision import autocast
from disentangle.registry import get_registry
from disentangle.run import build_model, new_run
from disentangle.tracking import Tracker

RESULTS = Path(__file__).resolve().parent / "results"
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


def runner_seconds(model: str, steps: int, checkpoint_every: int, folder: Path,
                   device: str) -> float:
    """Seconds of one fresh runner run of ``steps`` steps, logged to a store in ``folder``."""
    plan = plan_for(model, steps, checkpoint_every, device)
    tracker = Tracker(f"sqlite:///{folder / 'mlflow.db'}")
    run = new_run(plan, get_registry(), tracker, echo=lambda line: None)
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        seconds = timed(lambda: train(run, echo=lambda line: None, progress=True))
    if tracker.get_run(run.run_id).info.status != "FINISHED":
        sys.exit(f"the runner did not finish {model}'s run")
    return seconds


def runner_against_bare(model: str, steps: int, checkpoint_every: int, repeats: int,
                        device: str = "cpu") -> tuple[float, float]:
    """Median ms per step of the runner and of the bare loop, alternated.

    Each is the difference of two timings, ``2 * steps`` steps against ``steps``, divided
    by ``steps``: what one more step costs, with the start-up, the first steps' warm-up and
    (for the runner) the end of the run's record cancelled out.
    """
    runner, bare = [], []
    plan = plan_for(model, steps, checkpoint_every, device)
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)  # the runs' checkpoints and artifacts live beside their store
        try:
            for _ in range(repeats):
                short, long = (runner_seconds(model, n, checkpoint_every, Path(tmp), device)
                               for n in (steps, 2 * steps))
                runner.append(long - short)
                built = build_model(plan, torch.device(device))
                short, long = (bare_seconds(plan, built, n) for n in (steps, 2 * steps))
                bare.append(long - short)
        finally:
            os.chdir(cwd)
    return (1000 * statistics.median(runner) / steps, 1000 * statistics.median(bare) / steps)


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
    parser.add_argument("--steps", type=int, default=50,
                        help="runs of this many steps and of twice as many are timed")
    parser.add_argument("--checkpoint-every", type=int, default=50,
                        help="the runner's checkpoint interval (its default is 250)")
    parser.add_argument("--repeats", type=int, default=2, help="runner/bare alternations")
    parser.add_argument("--option-steps", type=int, default=10,
                        help="steps per timing of an option")
    parser.add_argument("--rounds", type=int, default=3, help="timings per option")
    parser.add_argument("--compile", action="store_true",
                        help="also time torch.compile (compiling takes minutes per model)")
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args()
    chosen = [m for m in args.models.split(",") if m]
    unknown = sorted(set(chosen) - set(models))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(models)}")
    lines = [f"disentangle {disentangle.__version__}, torch {torch.__version__}, Python "
             f"{platform.python_version()}, {os.cpu_count()} CPUs, "
             f"{torch.get_num_threads()} torch threads; load average "
             f"{os.getloadavg()[0]:.2f} at the start",
             f"runner: {2 * args.steps} against {args.steps} steps, checkpoint every "
             f"{args.checkpoint_every}, {args.repeats} alternations with the bare loop; "
             f"options: best of "
             f"{args.rounds} x {args.option_steps} steps", ""]
    print("\n".join(lines), flush=True)

    def emit(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    for model in chosen:
        runner, bare = runner_against_bare(model, args.steps, args.checkpoint_every,
                                           args.repeats)
        emit(f"{model}: runner {runner:.1f} ms/step, bare {bare:.1f} ms/step, "
             f"ratio {runner / bare:.3f}")
        for row in options(model, args.option_steps, args.rounds, args.compile):
            emit(row)
    emit(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
