"""What a run's pictures cost on the CPU, and their share of the main job; and a screenshot
of a suite's report page.

For each model (default: beta_vae and infogan on dSprites, their default sizes), each
picture is timed on its own, as the median of ``--repeats`` timings:

- the code-factor matrix of an evaluation: computing it from the shared sample's codes
  (which MIG encodes anyway) and writing its JSON and heatmap;
- the final pictures: samples, reconstructions, each traversal PNG and GIF, the traversal
  figure (with the VAE's per-latent KL), and ``write_pictures`` as a whole.

The share of the main job (``disentangle run infogan --dataset dsprites`` with its defaults:
2,000 steps, an evaluation every 1,000 steps and at the end) is what the pictures added by
the code-factor matrix, the GIFs and the traversal figure cost, over the job's training time
estimated from the median of ``--repeats`` timings of 10 bare training steps.

With ``--report-shot PNG`` it also runs the smoke suite into a fresh store, writes its
report and takes a headless Chromium screenshot of the page.

    python benchmarks/picture_costs.py --out benchmarks/results/picture_costs.txt \\
        --report-shot benchmarks/results/report_smoke.png
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import disentangle
from disentangle import codefactor, pictures
from disentangle.artifacts import write_pictures
from disentangle.config import RunConfig
from disentangle.evaluation import Observer
from disentangle.loop import seed_step
from disentangle.models import CodeKL, Reconstructs, eval_mode
from disentangle.plan import plan_new
from disentangle.registry import get_registry
from disentangle.run import Run, new_run
from disentangle.tracking import Tracker


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def open_run(model: str, folder: Path) -> Run:
    config = RunConfig(model=model, dataset="dsprites", seed=0, metrics=("mig",),
                       device="cpu", experiment="picture_costs")
    plan = plan_new(config, {}, get_registry())
    return new_run(plan, get_registry(), Tracker(f"sqlite:///{folder / 'mlflow.db'}"),
                   echo=lambda line: None)


def train_seconds(run: Run, steps: int, repeats: int) -> float:
    """Median seconds per bare training step of the run's model."""
    s = run.plan.settings

    def ten() -> None:
        for step in range(steps):
            images, factors = run.plan.dataset.sample(s.batch_size, seed_step(s.seed, step),
                                                      run.device)
            losses = run.model.train_step(images, factors, step)
        float(next(iter(losses.values())))
    return median_seconds(ten, repeats) / steps


def picture_costs(run: Run, folder: Path, repeats: int) -> tuple[list[tuple[str, float]],
                                                                  float, float]:
    """(picture, seconds) of each picture; the seconds of the matrix per evaluation and of
    the final pictures this project's issue on pictures added."""
    model, s = run.model, run.plan.settings
    observer = Observer(model, run.plan.dataset, seed=s.seed)
    encode = median_seconds(lambda: Observer(model, run.plan.dataset, seed=s.seed)
                            .shared_sample(codefactor.SAMPLE), 1)
    representation, factors = observer.shared_sample(codefactor.SAMPLE)
    with eval_mode(model):
        matrix = codefactor.code_factor(representation.codes(), factors, model.code_names(),
                                        run.plan.dataset.factor_names)
    rows = [(f"encoding the matrix's {codefactor.SAMPLE:,} images (shared with MIG)",
             encode)]
    compute = median_seconds(lambda: codefactor.code_factor(
        representation.codes(), factors, model.code_names(), run.plan.dataset.factor_names),
        repeats)
    save = median_seconds(lambda: codefactor.save(matrix, folder / "m", "cost"), repeats)
    rows += [("code-factor matrix: computing it", compute),
             ("code-factor matrix: JSON and heatmap", save)]
    generator = torch.Generator().manual_seed(0)
    with eval_mode(model):
        samples = model.generate(64, generator)
        rows.append(("samples.png", median_seconds(lambda: pictures.save_grid(
            pictures.as_rows(model.generate(64, generator), 8), folder / "s.png"), repeats)))
        real, _ = run.plan.dataset.sample(256, np.random.default_rng(0), run.device)
        if isinstance(model, Reconstructs):
            rows.append(("reconstructions.png", median_seconds(lambda: pictures.save_grid(
                torch.cat([real[:16], model.reconstruct(real[:16])]).view(4, 8, *samples
                                                                          .shape[1:]),
                folder / "r.png"), repeats)))
        kl = 0.0
        if isinstance(model, CodeKL):
            kl = median_seconds(lambda: model.code_kl(real), repeats)
            rows.append(("per-latent KL of 256 images (orders the figure)", kl))
        traversals = model.traversals(generator)
        rows.append((f"traversals: drawing all {len(traversals)}",
                     median_seconds(lambda: model.traversals(generator), repeats)))
    name, images = next(iter(traversals.items()))
    rows.append((f"one traversal PNG ({name})", median_seconds(
        lambda: pictures.save_grid(images, folder / "t.png"), repeats)))
    gif = median_seconds(lambda: pictures.save_gif(images, folder / "t.gif"), repeats)
    rows.append((f"one traversal GIF ({name})", gif))
    codes = [c for c in model.code_names() if c in traversals]
    figure_rows = torch.stack([traversals[c][0] for c in codes
                               if traversals[c].shape[1] == images.shape[1]])
    figure = median_seconds(lambda: pictures.labelled_rows(
        figure_rows, ["latent_0  KL 1.00  orientation"] * len(figure_rows), "cost").save(
        folder / "f.png"), repeats)
    rows.append(("traversals.png (the figure)", figure))
    rows.append(("write_pictures, everything at the end", median_seconds(
        lambda: write_pictures(run, folder / "all", matrix), repeats)))
    return rows, compute + save, len(codes) * gif + figure + kl


def report_shot(path: Path) -> str:
    """Run the smoke suite into a fresh store, write its report, screenshot the page."""
    chromium = next((shutil.which(n) for n in ("chromium", "chromium-browser",
                                                "google-chrome") if shutil.which(n)), None)
    if chromium is None:
        return "no Chromium here: no screenshot taken"
    with tempfile.TemporaryDirectory() as tmp:
        store = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        cli = [sys.executable, "-m", "disentangle.cli"]
        suite = Path(__file__).resolve().parent / "suites" / "smoke.yaml"
        subprocess.run([*cli, "bench", str(suite), "--no-progress", "--tracking-uri", store],
                       check=True, cwd=tmp, capture_output=True)
        start = time.perf_counter()
        subprocess.run([*cli, "report", "--suite", "smoke", "--out", "report",
                        "--tracking-uri", store], check=True, cwd=tmp, capture_output=True)
        seconds = time.perf_counter() - start
        page = Path(tmp) / "report" / "index.html"
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                        "--window-size=1400,2400", f"--screenshot={path.resolve()}",
                        page.as_uri()], check=True, capture_output=True, timeout=180)
    return (f"report of the smoke suite: `disentangle report --suite smoke` took "
            f"{seconds:.1f} s; screenshot {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="beta_vae,infogan")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", help="also write the report here")
    parser.add_argument("--report-shot", metavar="PNG", help="screenshot of the smoke "
                                                             "suite's report")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lines = [f"disentangle {disentangle.__version__}, torch {torch.__version__}, Python "
             f"{platform.python_version()}, {os.cpu_count()} CPUs, {args.threads} torch "
             f"threads; load average {os.getloadavg()[0]:.2f} at the start",
             f"each picture: median of {args.repeats} timings, default sizes", ""]
    print("\n".join(lines))
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            run = open_run(model, Path(tmp))
            folder = Path(tmp) / model
            rows, per_eval, final = picture_costs(run, folder, args.repeats)
            block = [f"{model} on dsprites:"]
            block += [f"    {what:55s} {seconds * 1000:8.1f} ms" for what, seconds in rows]
            if model == "infogan":
                step = train_seconds(run, 10, args.repeats)
                s = run.plan.settings
                evaluations = s.steps // s.eval_every + (s.steps % s.eval_every != 0)
                added = evaluations * per_eval + final
                block.append(
                    f"  the main job (run infogan --dataset dsprites: {s.steps} steps, "
                    f"{evaluations} evaluations): training {s.steps * step:.0f} s at "
                    f"{step * 1000:.0f} ms/step; the new pictures add {added:.2f} s "
                    f"({evaluations} x {per_eval:.2f} s matrix, {final:.2f} s GIFs and "
                    f"figure): {100 * added / (s.steps * step):.2f}% of its training time")
            print("\n".join(block), flush=True)
            lines += block
    if args.report_shot:
        lines += ["", report_shot(Path(args.report_shot))]
        print(lines[-1])
    lines.append(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
