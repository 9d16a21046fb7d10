"""Reproduction on dSprites: the reference settings trained on a long schedule, scored along.

One seed each of ``vae``, ``beta_vae`` (beta 4), ``factor_vae`` (gamma 10), ``beta_tcvae``
(beta 6), ``infogan`` (its dsprites preset) and ``infogan_cr``, all at their defaults, which
are the reference study's (and InfoGAN-CR's) settings; InfoGAN-CR's contrastive term switches
on at the reference run's share of its schedule (89%) of the steps its run is created with.
One more setting, ``infogan_cr_half``, switches that term on halfway (see ``SETTINGS``).
Each setting trains in its own MLflow store under ``--store``, exactly as
``disentangle run MODEL --dataset dsprites --steps N`` would, scoring ``mig``, ``dci_fast``,
``sap`` and ``modularity`` every ``--eval-every`` steps and at the end; the ``factor_vae``
score, which encodes the whole factor grid, is added once at the run's last step.

Every run is resumable: a second call continues each unfinished run from its checkpoint
(also after ``kill -9``), and a larger ``--steps`` extends finished ones. So the schedule can
be grown in stages as CPU time allows::

    nice python benchmarks/reproduce_dsprites.py --steps 15000 --jobs 2
    nice python benchmarks/reproduce_dsprites.py --steps 30000 --jobs 2
    python benchmarks/reproduce_dsprites.py --report

``--report`` reads the stores and writes ``results/reproduce_dsprites.jsonl`` (one line per
evaluation), the learning curves ``results/reproduce_dsprites.png`` and prints a Markdown
table of the last evaluation of every setting beside the published values.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import time
from pathlib import Path

import torch

import disentangle
from disentangle.artifacts import log_evaluation
from disentangle.commands import die_with_parent
from disentangle.config import RunConfig
from disentangle.loop import train
from disentangle.plan import plan_new
from disentangle.registry import get_registry
from disentangle.run import new_run, open_run
from disentangle.tracking import Tracker

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
#: the settings in the order they are started (the longest first, so two workers end
#: together): a name, its model, and for InfoGAN-CR the share of the steps a run is created
#: with after which its contrastive term switches on. ``infogan_cr`` takes the reference
#: run's share (288,000 of 322,560 iterations); ``infogan_cr_half`` switches it on halfway,
#: the same seed, so up to then it retraces ``infogan_cr`` and after it shows what the term
#: does to a generator that is still moving.
SETTINGS: dict[str, tuple[str, float | None]] = {
    "factor_vae": ("factor_vae", None),
    "beta_tcvae": ("beta_tcvae", None),
    "vae": ("vae", None),
    "beta_vae": ("beta_vae", None),
    "infogan": ("infogan", None),
    "infogan_cr": ("infogan_cr", 288_000 / 322_560),
    "infogan_cr_half": ("infogan_cr", 0.5),
}
#: scored along each run, then (the last one) once at its end
CURVE_METRICS = ("mig", "dci_fast", "sap", "modularity")
FINAL_METRICS = ("factor_vae",)
EXPERIMENT = "reproduce_dsprites"
#: published values (InfoGAN-CR, Lin et al. 2020, Table 1): FactorVAE score, DCI, SAP,
#: modularity, MIG; None where the table gives none. beta_tcvae's and beta_vae's rows are
#: the literature values quoted there.
PUBLISHED = {
    "factor_vae": {"factor_vae": 0.83, "dci_fast": 0.70, "sap": 0.57, "modularity": 0.79,
                   "mig": 0.40},
    "beta_tcvae": {"factor_vae": 0.62, "dci_fast": 0.29, "mig": 0.45},
    "beta_vae": {"factor_vae": 0.63, "dci_fast": 0.41, "mig": 0.21},
    "infogan": {"factor_vae": 0.82, "dci_fast": 0.60, "sap": 0.41, "modularity": 0.94,
                "mig": 0.22},
    "infogan_cr": {"factor_vae": 0.88, "dci_fast": 0.71, "sap": 0.58, "modularity": 0.96,
                   "mig": 0.37},
}
PUBLISHED_AS = {"factor_vae": "FactorVAE (gamma 10)", "beta_tcvae": "beta-TCVAE",
                "beta_vae": "beta-VAE", "infogan": "modified InfoGAN",
                "infogan_cr": "InfoGAN-CR"}
COLUMNS = ("mig", "dci_fast", "sap", "modularity", "factor_vae")


def _store(root: Path, setting: str) -> Path:
    folder = root / setting
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _uri(folder: Path) -> str:
    return f"sqlite:///{folder / 'mlflow.db'}"


def _the_run(tracker: Tracker) -> object | None:
    """The one run of this benchmark in a setting's store (None before it is started)."""
    experiment = tracker.client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return None
    runs = tracker.client.search_runs([experiment.experiment_id], order_by=["start_time ASC"])
    return runs[0] if runs else None


def train_setting(task: tuple[str, int, int, str, int]) -> str:
    """Start, continue or extend one setting's run to ``steps``; then add the final metrics
    at its last step. Returns a line saying what was done."""
    setting, steps, eval_every, root, threads = task
    model, cr_start_share = SETTINGS[setting]
    torch.set_num_threads(threads)
    folder = _store(Path(root), setting)
    os.chdir(folder)  # the store's artifacts live beside its database
    registry, tracker = get_registry(), Tracker(_uri(folder))

    def echo(line: str) -> None:
        print(f"[{setting}] {line.strip()}", flush=True)

    started = time.perf_counter()
    existing = _the_run(tracker)
    if existing is None:
        config = RunConfig(model=model, dataset="dsprites", seed=0, steps=steps,
                           metrics=CURVE_METRICS, eval_every=eval_every, device="cpu",
                           experiment=EXPERIMENT)
        overrides = ({"cr_start": str(int(cr_start_share * steps))}
                     if cr_start_share is not None else {})
        run = new_run(registry=registry, plan=plan_new(config, overrides, registry),
                      tracker=tracker,
                      echo=echo)
    else:
        run = open_run(existing.info.run_id, registry, tracker, restart=True, steps=steps)
    logged = tracker.logged_steps(run.run_id)
    done = existing is not None and existing.info.status == "FINISHED" and run.step >= steps
    if not done:
        result = train(run, echo=echo, progress=False)
        if result.status != "FINISHED":
            return f"{setting}: {result.status} at step {result.step}"
        logged = tracker.logged_steps(run.run_id)
    if any(logged.get(f"eval/{m}", -1) < run.step for m in FINAL_METRICS):
        final = open_run(run.run_id, registry, tracker, metrics=FINAL_METRICS)
        log_evaluation(final, echo)
    return f"{setting}: step {run.step}, {time.perf_counter() - started:.0f} s this call"


def evaluations(root: Path) -> list[dict]:
    """Every evaluation logged in the stores: one record per (setting, step)."""
    records = []
    for setting, (model, _) in SETTINGS.items():
        folder = root / setting
        if not (folder / "mlflow.db").is_file():
            continue
        tracker = Tracker(_uri(folder))
        found = _the_run(tracker)
        if found is None:
            continue
        by_step: dict[int, dict[str, float]] = {}
        for key in found.data.metrics:
            if key.startswith("eval/"):
                for point in tracker.client.get_metric_history(found.info.run_id, key):
                    by_step.setdefault(point.step, {})[key[5:]] = point.value
        for step in sorted(by_step):
            records.append({"setting": setting, "model": model,
                            "run_id": found.info.run_id, "step": step,
                            "status": found.info.status, "scores": by_step[step]})
    return records


def table(records: list[dict]) -> str:
    """Markdown: per setting its steps and last value of every column, beside the published
    values of its model."""
    head = "| setting | steps | " + " | ".join(COLUMNS) + " | published (same columns) |"
    lines = [head, "| --- | --- | " + " | ".join("---" for _ in COLUMNS) + " | --- |"]
    for setting, (model, _) in SETTINGS.items():
        rows = [r for r in records if r["setting"] == setting]
        if not rows:
            continue
        last = {}
        for row in rows:
            last.update(row["scores"])
        cells = [f"{last[c]:.3f}" if c in last else "" for c in COLUMNS]
        published = PUBLISHED.get(model)
        shown = (f"{PUBLISHED_AS[model]}: " + " / ".join(
            f"{published[c]:.2f}" if c in published else "-" for c in COLUMNS)
            if published else "none")
        lines.append(f"| {setting} | {rows[-1]['step']:,} | " + " | ".join(cells)
                     + f" | {shown} |")
    return "\n".join(lines)


def plot_curves(records: list[dict], path: Path) -> None:
    """One panel per curve metric: its score against step, one line per setting; a dotted
    line at each model's published value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(CURVE_METRICS), figsize=(4 * len(CURVE_METRICS), 3.4))
    for ax, metric in zip(axes, CURVE_METRICS):
        published_drawn = set()
        for setting, (model, _) in SETTINGS.items():
            points = [(r["step"], r["scores"][metric]) for r in records
                      if r["setting"] == setting and metric in r["scores"]]
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, marker="o", markersize=3, label=setting)
            if model in PUBLISHED and metric in PUBLISHED[model] and model not in published_drawn:
                published_drawn.add(model)
                ax.axhline(PUBLISHED[model][metric], linestyle=":", linewidth=0.8,
                           color=ax.lines[-1].get_color() if points else "grey")
        ax.set_title(metric)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("dSprites, one seed each; dotted: published value", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(root: Path) -> None:
    """Write the records and curves, and print the table. A setting with no run in the
    stores under ``root`` keeps the records it already has in the results (its runs may have
    been made in another store), so reporting one setting's store never erases the others'."""
    records, path = evaluations(root), RESULTS / "reproduce_dsprites.jsonl"
    stored = {r["setting"] for r in records}
    if path.is_file():
        earlier = [json.loads(line) for line in path.read_text().splitlines() if line]
        kept = [r for r in earlier if r["setting"] not in stored]
        if kept:
            names = ", ".join(sorted({r["setting"] for r in kept}))
            print(f"kept the recorded evaluations of {names} (no run of theirs under {root})")
        order = list(SETTINGS)
        records = sorted(records + kept, key=lambda r: (order.index(r["setting"]), r["step"]))
    RESULTS.mkdir(exist_ok=True)
    with path.open("w") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")
    plot_curves(records, RESULTS / "reproduce_dsprites.png")
    print(table(records))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default=",".join(SETTINGS),
                        help=f"comma-separated, from {', '.join(SETTINGS)}")
    parser.add_argument("--steps", type=int, default=30_000, help="train (or extend) to this")
    parser.add_argument("--eval-every", type=int, default=3_000,
                        help="evaluation interval of a new run (kept when it is extended)")
    parser.add_argument("--jobs", type=int, default=2, help="settings trained at once")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per job")
    parser.add_argument("--store", type=Path, default=HERE / "runs" / EXPERIMENT,
                        help="folder of the runs' MLflow stores (one per setting)")
    parser.add_argument("--report", action="store_true",
                        help="write the records and curves from the stores, print the table")
    args = parser.parse_args()
    root = args.store.resolve()
    if args.report:
        report(root)
        return
    settings = [s for s in args.settings.split(",") if s]
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        parser.error(f"unknown setting(s) {', '.join(unknown)}; choose from "
                     f"{', '.join(SETTINGS)}")
    print(f"disentangle {disentangle.__version__}, torch {torch.__version__}, Python "
          f"{platform.python_version()}, {os.cpu_count()} CPUs; {len(settings)} setting(s) to "
          f"{args.steps:,} steps, {args.jobs} at a time, {args.threads} thread(s) each",
          flush=True)
    tasks = [(s, args.steps, args.eval_every, str(root), args.threads) for s in settings]
    context = multiprocessing.get_context("spawn")
    # a worker stops with this process (a killed benchmark leaves no run training on)
    with context.Pool(args.jobs, initializer=die_with_parent, maxtasksperchild=1) as pool:
        for line in pool.imap_unordered(train_setting, tasks):
            print(line, flush=True)
    report(root)


if __name__ == "__main__":
    main()
