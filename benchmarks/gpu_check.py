"""The accelerator check: what a lent GPU shows about the training step, in one short run.

Run by ``benchmarks/gpu_check.sh`` (which brings MLflow where it is missing). In order:

1. **Step speed** of every model on the device: the runner against the bare loop (fp32), and
   the bare loop's shipped model against the other memory format and bf16 autocast, with
   the losses' largest relative difference (:mod:`step_speed`'s measurements).
2. **CPU against the device**: each model built from one seed on both, a few seeded steps
   on one batch stream, every random draw made on the CPU and moved (the devices' random
   streams differ), TF32 off; the losses' largest relative difference, and a verdict
   against ``--tolerance``.
3. **Training** ``infogan``, ``infogan_cr`` and ``beta_tcvae`` on dSprites through the runner
   for the time left, split between them, MIG logged four times along each run.

The report goes to ``OUT/gpu_check.txt`` and each run's MIG evaluations to
``OUT/gpu_check_mig.jsonl``. ``--dry-run`` does all of it on the CPU at toy sizes, which
the test suite runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from step_speed import bare_steps, largest_difference, options, plan_for, runner_against_bare

import disentangle
from disentangle.config import RunConfig
from disentangle.loop import train
from disentangle.plan import plan_new
from disentangle.registry import get_registry
from disentangle.run import build_model, new_run
from disentangle.tracking import Tracker

TRAINED = ("infogan", "infogan_cr", "beta_tcvae")
#: torch's random draws that the models make, patched by :func:`draws_on_cpu`
_DRAWS = ("randn", "rand", "randint", "randperm")


@contextlib.contextmanager
def draws_on_cpu() -> Iterator[None]:
    """Make torch's random draws on the CPU generator and move them where they were asked
    for, so that two devices see the same random numbers."""
    saved = {name: getattr(torch, name) for name in (*_DRAWS, "randn_like", "rand_like")}

    def on_cpu(draw):  # noqa: ANN001, ANN202 - wraps torch's overloaded signatures
        def drawn(*args, device=None, **kwargs):  # noqa: ANN002, ANN003, ANN202
            return draw(*args, **kwargs).to(device or "cpu")
        return drawn

    def like(draw):  # noqa: ANN001, ANN202
        def drawn(t, *, dtype=None, device=None, **kwargs):  # noqa: ANN001, ANN003, ANN202
            return draw(t.shape, dtype=dtype or t.dtype, **kwargs).to(device or t.device)
        return drawn

    for name in _DRAWS:
        setattr(torch, name, on_cpu(saved[name]))
    torch.randn_like, torch.rand_like = like(saved["randn"]), like(saved["rand"])
    try:
        yield
    finally:
        for name, draw in saved.items():
            setattr(torch, name, draw)


def same_losses(model: str, device: str, steps: int) -> float:
    """The largest relative difference of ``steps`` seeded steps' losses on ``device``
    from the CPU's."""
    losses = []
    for where in ("cpu", device):
        plan = plan_for(model, steps, steps, where)
        with draws_on_cpu():
            losses.append(bare_steps(plan, build_model(plan, torch.device(where)), steps))
    return largest_difference(losses[1], losses[0])


def train_for(model: str, device: str, seconds: float, ms_per_step: float, folder: Path,
              evaluations: int) -> list[dict]:
    """Train ``model`` through the runner for about ``seconds`` (a fifth of it left for
    evaluation), MIG logged ``evaluations`` times; returns the evaluations as records."""
    steps = max(1, int(0.8 * seconds * 1000 / ms_per_step) // evaluations) * evaluations
    config = RunConfig(model=model, dataset="dsprites", seed=0, steps=steps, device=device,
                       metrics=("mig",), eval_every=steps // evaluations,
                       experiment="gpu_check")
    tracker = Tracker(f"sqlite:///{folder / 'mlflow.db'}")
    run = new_run(plan_new(config, {}, get_registry()), get_registry(), tracker,
                  echo=print)
    started = time.perf_counter()
    result = train(run, progress=False)
    seconds = time.perf_counter() - started
    history = tracker.client.get_metric_history(run.run_id, "eval/mig")
    return [{"model": model, "device": device, "steps": steps, "status": result.status,
             "seconds": round(seconds, 1), "step": m.step, "mig": m.value} for m in history]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--minutes", type=float, default=8.0, help="the whole check's budget")
    parser.add_argument("--out", type=Path, required=True, help="folder of the report")
    parser.add_argument("--tolerance", type=float, default=1e-3,
                        help="largest relative loss difference CPU/device that passes")
    parser.add_argument("--dry-run", action="store_true",
                        help="on the CPU at toy sizes: checks the script, measures nothing")
    args = parser.parse_args()
    started = time.perf_counter()
    device = "cpu" if args.dry_run else args.device
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    models = ("vae",) if args.dry_run else tuple(sorted(get_registry().entries["model"]))
    steps, repeats, option_steps, rounds, compare, evaluations = (
        (2, 1, 1, 1, 2, 1) if args.dry_run else (100, 2, 20, 3, 4, 4))
    args.out.mkdir(parents=True, exist_ok=True)
    report = args.out / "gpu_check.txt"
    lines: list[str] = []

    def emit(line: str) -> None:
        lines.append(line)
        print(line, flush=True)
        report.write_text("\n".join(lines) + "\n")  # kept whole if the time runs out

    name = (torch.cuda.get_device_name(device) if device.startswith("cuda")
            else platform.processor() or "cpu")
    emit(f"disentangle {disentangle.__version__}, torch {torch.__version__}, Python "
         f"{platform.python_version()}, on {device} ({name}){' [dry run]' if args.dry_run else ''}")
    emit(f"\n1. step speed ({steps} runner steps x {repeats}; options best of {rounds} x "
         f"{option_steps} steps)")
    runner_ms = {}
    for model in models:
        timing = runner_against_bare(model, steps, steps, repeats, device)
        runner_ms[model] = timing.runner_ms
        emit(f"{model}: runner {timing.runner_ms:.2f} ms/step, bare {timing.bare_ms:.2f} "
             f"ms/step, ratio {timing.ratio:.3f}")
        for row in options(model, option_steps, rounds, False, device):
            emit(row)
    emit(f"\n2. losses of {compare} seeded steps, {device} against the CPU (tolerance "
         f"{args.tolerance:g})")
    for model in models:
        diff = same_losses(model, device, compare)
        emit(f"{model:<18} {diff:.1e}  {'same' if diff <= args.tolerance else 'DIFFERENT'}")
    left = args.minutes * 60 - (time.perf_counter() - started)
    emit(f"\n3. training {', '.join(TRAINED)} for the {max(left, 0):.0f} s left, MIG logged "
         f"{evaluations} times along each run")
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            for i, model in enumerate(TRAINED):
                share = (args.minutes * 60 - (time.perf_counter() - started)) / (len(TRAINED) - i)
                ms = (runner_ms.get(model)
                      or runner_against_bare(model, steps, steps, 1, device).runner_ms)
                records += train_for(model, device, share, ms, Path(tmp), evaluations)
                last = records[-1]
                emit(f"{model}: {last['steps']} steps in {last['seconds']} s ({last['status']}); "
                     "MIG " + ", ".join(f"{r['mig']:.3f} at {r['step']}"
                                        for r in records if r["model"] == model))
        finally:
            os.chdir(cwd)
    (args.out / "gpu_check_mig.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    emit(f"\ndone in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
