"""The ``disentangle`` command line.

Every error the user can fix is printed as one ``error: ...`` line with exit code 2;
tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from disentangle import __version__
from disentangle.config import RunConfig, fields_help, instantiate, split_assignments, to_dict
from disentangle.errors import UsageError
from disentangle.registry import KINDS, Registry, get_registry


def _registry(quiet: bool = False) -> Registry:
    registry = get_registry()
    if not quiet:
        for failure in registry.failures:
            print(f"warning: {failure}", file=sys.stderr)
    return registry


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="disentangle",
        description="Train, score and compare disentangled representation learners.")
    parser.add_argument("--version", action="version", version=f"disentangle {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="train a model on a dataset, evaluate it, log to MLflow",
                         description="Train MODEL on a dataset, score it, log it to MLflow.")
    run.add_argument("model", nargs="?", help="model plugin (see `disentangle list`)")
    run.add_argument("--dataset", "-d", help="dataset plugin (default: dsprites)")
    run.add_argument("--steps", type=int, help="training steps (default: the model's schedule)")
    run.add_argument("--batch-size", type=int, help="batch size (default: 64)")
    run.add_argument("--seed", type=int, help="random seed (default: 0)")
    run.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a model hyper-parameter (repeatable; see `disentangle show`)")
    run.add_argument("--metrics", help="comma-separated metrics (default: mig,"
                                       "categorical_accuracy)")
    run.add_argument("--eval-every", type=int, help="evaluate every N steps (default: 1000)")
    run.add_argument("--checkpoint-every", type=int,
                     help="write the checkpoint every N steps (default: 250)")
    run.add_argument("--data-dir", help="folder with dataset files (default: $DISENTANGLE_DATA)")
    run.add_argument("--experiment", help="MLflow experiment (default: the dataset name)")
    run.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI "
                                            "or sqlite:///mlflow.db)")
    run.add_argument("--resume", metavar="RUN_ID", help="continue this run from its checkpoint")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(handler=cmd_run)

    lst = sub.add_parser("list", help="list models, datasets and metrics with their plugins")
    lst.set_defaults(handler=cmd_list)

    show = sub.add_parser("show", help="a model's hyper-parameters, defaults and help")
    show.add_argument("model")
    show.add_argument("--dataset", help="show the defaults this dataset selects")
    show.set_defaults(handler=cmd_show)

    ev = sub.add_parser("evaluate", help="score a logged run's checkpoint; log to that run",
                        description="Score the checkpoint of a logged run with any metrics "
                                    "and log eval/<score> to the same run at its step.")
    ev.add_argument("run_id")
    ev.add_argument("--metrics", help="comma-separated metrics (default: the run's)")
    ev.add_argument("--param", dest="params", action="append", default=[],
                    metavar="METRIC.NAME=VALUE",
                    help="a metric's sampling parameter, e.g. dci.num_train=1000 (repeatable)")
    ev.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    ev.add_argument("--tracking-uri", help="MLflow tracking URI (as for run)")
    ev.set_defaults(handler=cmd_evaluate)

    sync = sub.add_parser("sync", help="send tracking records that waited for an unreachable "
                                       "store", description="Send the metrics, artifacts and "
                                       "status that runs on this machine kept while their "
                                       "tracking store could not be reached.")
    sync.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="runs to sync (default: all)")
    sync.add_argument("--tracking-uri", help="send to this store instead of the one each run "
                                             "was logging to")
    sync.set_defaults(handler=cmd_sync)

    bench = sub.add_parser("bench", help="run a suite of runs; skips finished ones, resumes "
                                         "interrupted ones",
                           description="Run every run of a suite file (benchmarks/suites/"
                                       "NAME.yaml or a path). Rerunning the same suite skips "
                                       "finished runs and resumes interrupted ones.")
    bench.add_argument("suite", help="suite name or YAML file")
    bench.add_argument("--tracking-uri", help="MLflow tracking URI (as for run)")
    bench.add_argument("--retry-failed", action="store_true",
                       help="start runs that failed before again (default: leave them)")
    bench.add_argument("--dry-run", action="store_true", help="list the runs and what would "
                                                              "happen to each; train nothing")
    bench.add_argument("--no-progress", action="store_true", help="no progress bars")
    bench.add_argument("--executor", choices=("local", "ray"), default="local",
                       help="local: one run after another here (default); ray: one Ray task "
                            "per run")
    bench.add_argument("--address", help="Ray cluster address (default: start Ray here)")
    bench.add_argument("--cpus-per-run", type=float, default=1, help="Ray: CPUs per run")
    bench.add_argument("--gpus-per-run", type=float, default=0, help="Ray: GPUs per run")
    bench.set_defaults(handler=cmd_bench)

    cmp = sub.add_parser("compare", help="scores of logged runs as a table and box plots",
                         description="Mean and standard deviation of each score per model "
                                     "setting, over the finished runs of an experiment or "
                                     "suite.")
    cmp.add_argument("--experiment", help="only this MLflow experiment")
    cmp.add_argument("--suite", help="only the runs of this suite")
    cmp.add_argument("--metrics", help="comma-separated scores (default: every eval score)")
    cmp.add_argument("--csv", metavar="FILE", help="also write the per-run table as CSV")
    cmp.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    cmp.add_argument("--plot", metavar="PNG", help="box plots per model (default with --suite: "
                                                   "comparison-SUITE.png)")
    cmp.add_argument("--tracking-uri", help="MLflow tracking URI (as for run)")
    cmp.set_defaults(handler=cmd_compare)

    ui = sub.add_parser("ui", help="open the MLflow UI on the tracking store")
    ui.add_argument("--tracking-uri", help="MLflow tracking URI (as for run)")
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default: "
                                                        "loopback only)")
    ui.add_argument("--port", type=int, default=5000, help="port (default: 5000)")
    ui.set_defaults(handler=cmd_ui)

    data = sub.add_parser("data", help="dataset files")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    fetch = data_sub.add_parser("fetch", help="download a dataset's files (checksummed)")
    fetch.add_argument("dataset")
    fetch.add_argument("--data-dir", help="destination (default: $DISENTANGLE_DATA or "
                                          "~/.cache/disentangle/data)")
    fetch.set_defaults(handler=cmd_fetch)
    return parser


def _metric_names(text: str | None) -> tuple[str, ...] | None:
    return tuple(m.strip() for m in text.split(",") if m.strip()) if text is not None else None


def _run_config(args: argparse.Namespace) -> RunConfig:
    given = {
        "model": args.model, "dataset": args.dataset, "steps": args.steps,
        "batch_size": args.batch_size, "seed": args.seed, "device": args.device,
        "eval_every": args.eval_every, "checkpoint_every": args.checkpoint_every,
        "data_dir": args.data_dir, "experiment": args.experiment,
        "metrics": _metric_names(args.metrics),
    }
    return RunConfig(**{k: v for k, v in given.items() if v is not None})


def cmd_run(args: argparse.Namespace) -> int:
    from disentangle import runner
    from disentangle.tracking import Tracker, ui_command

    registry = _registry()
    overrides = split_assignments(args.overrides)
    progress = not args.no_progress
    if args.resume:
        if overrides:
            raise UsageError("--set cannot change the hyper-parameters of a resumed run")
        tracker = Tracker(args.tracking_uri)
        state, setup = runner.stored_run(tracker, args.resume, registry, steps=args.steps,
                                         device=args.device)
        for key in ("model", "dataset"):
            given, stored = getattr(args, key), getattr(setup.config, key)
            if given is not None and given != stored:
                raise UsageError(f"run {args.resume} trained {key} {stored!r}, not {given!r}")
        job = runner.continue_run(args.resume, state, setup, registry, tracker,
                                  progress=progress)
    else:
        if args.model is None:
            raise UsageError("name a model to train (see `disentangle list`) or --resume RUN_ID")
        setup = runner.prepare(_run_config(args), overrides, registry)  # before the store
        tracker = Tracker(args.tracking_uri)
        job = runner.new_run(setup, registry, tracker, progress=progress)
    result = job.train()
    print(f"\nrun {result.run_id} {result.status.lower()} at step {result.step} "
          f"after {result.seconds:.0f} s")
    for key, value in result.scores.items():
        print(f"  {key:32s} {value:.4f}")
    print(f"open the MLflow UI with:\n  {ui_command(tracker.uri)}")
    waiting = len(tracker.pending(result.run_id).records())
    if waiting:
        print(f"warning: {waiting} tracking record(s) of this run could not reach {tracker.uri}; "
              f"they are kept in {tracker.pending(result.run_id).folder}. Send them when the "
              f"store is back with `disentangle sync {result.run_id}`", file=sys.stderr)
    return {"FINISHED": 0, "KILLED": 130}.get(result.status, 1)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from disentangle import runner
    from disentangle.evaluation import parse_metric_params
    from disentangle.tracking import Tracker

    registry = _registry()
    tracker = Tracker(args.tracking_uri)
    state, setup = runner.stored_run(tracker, args.run_id, registry,
                                       metrics=_metric_names(args.metrics), device=args.device)
    params = parse_metric_params(registry, split_assignments(args.params))
    job = runner.Runner(setup, registry, tracker, runner.resolve_device(setup.config.device))
    job.attach(args.run_id, state)
    print(f"evaluating run {args.run_id} at step {job.step} on {job.device}...")
    result = job.evaluate(print, params)
    for key, value in result.scores.items():
        print(f"  {key:32s} {value:.4f}  ({result.seconds.get(key.split('.')[0], 0):.1f} s)"
              if "." not in key else f"  {key:32s} {value:.4f}")
    print(f"logged as eval/<score> at step {job.step} of run {args.run_id}; "
          f"{result.images_encoded:,} images encoded for {result.rows_requested:,} rows "
          f"requested" + (" (whole factor grid)" if result.grid else ""))
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from disentangle.tracking import Tracker, runs_cache

    waiting = {path.parent.parent.name: path.parent
               for path in runs_cache().glob("*/pending/records.jsonl")}
    run_ids = args.run_ids or sorted(waiting)
    if not run_ids:
        print("no tracking records are waiting")
        return 0
    left = 0
    for run_id in run_ids:
        if run_id not in waiting:
            raise UsageError(f"run {run_id} has no tracking records waiting on this machine")
        tracker = Tracker(args.tracking_uri or (waiting[run_id] / "store.txt").read_text())
        count = len(tracker.pending(run_id).records())
        if tracker.flush(run_id, force=True):
            print(f"run {run_id}: {count} record(s) sent to {tracker.uri}")
        else:
            left += 1
            print(f"run {run_id}: {tracker.uri} still fails; "
                  f"{len(tracker.pending(run_id).records())} record(s) still waiting")
    return 1 if left else 0


def cmd_bench(args: argparse.Namespace) -> int:
    from disentangle import executors, suites
    from disentangle.tracking import Tracker

    registry = _registry()
    suite = suites.load_suite(args.suite, registry)
    tracker = Tracker(args.tracking_uri)
    if args.dry_run:
        for spec in suite.specs:
            found = suites.existing_run(tracker, spec)
            state = found.info.status.lower() if found is not None else "new"
            print(f"  {state:9s} {spec.label}  [{spec.key}]")
        print(f"suite {suite.name}: {len(suite.specs)} runs in experiment {suite.experiment}")
        return 0
    parent = suites.suite_parent(tracker, suite)
    tracker.reopen(parent)
    print(f"suite {suite.name}: {len(suite.specs)} runs in experiment {suite.experiment} "
          f"(parent run {parent}), executor {args.executor}")
    progress = not args.no_progress
    if args.executor == "ray":
        outcomes = executors.run_ray(suite, parent, tracker.uri, args.address,
                                     args.cpus_per_run, args.gpus_per_run, args.retry_failed,
                                     progress)
    else:
        outcomes = executors.run_local(suite, parent, registry, tracker, args.retry_failed,
                                       progress)
    statuses = {o.status for o in outcomes}
    status = next((s for s in ("KILLED", "FAILED") if s in statuses), "FINISHED")
    tracker.end(parent, status)
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.action] = counts.get(outcome.action, 0) + 1
    print(f"suite {suite.name}: " + ", ".join(f"{n} {a}" for a, n in sorted(counts.items())))
    if status == "KILLED":
        print(f"interrupted: rerun `disentangle bench {args.suite}` to continue")
        return 130
    print(f"compare with: disentangle compare --suite {suite.name}")
    return 0 if status == "FINISHED" else 1


def cmd_compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from disentangle import compare
    from disentangle.suites import PARENT_TAG
    from disentangle.tracking import Tracker

    tracker = Tracker(args.tracking_uri)
    runs = compare.load_runs(tracker.uri, args.experiment, args.suite)
    if runs.empty:
        raise UsageError("no finished runs match" + (f" suite {args.suite!r}" if args.suite
                                                     else "") + f" in {tracker.uri}")
    metrics = list(_metric_names(args.metrics) or compare.metric_names(runs))
    table = compare.tidy(runs, metrics)
    summary = compare.summarize(table, metrics)
    shown = compare.formatted(summary, metrics)
    print(compare.markdown(shown) if args.markdown else shown.to_string(index=False))
    if args.csv:
        table.to_csv(args.csv, index=False)
        print(f"per-run table written to {args.csv}")
    plot = args.plot or (f"comparison-{args.suite}.png" if args.suite else None)
    if plot:
        title = f"suite {args.suite}" if args.suite else (args.experiment or "all runs")
        compare.plot(table, metrics, Path(plot), title)
        print(f"box plots written to {plot}")
        if args.suite:
            parent = runs[f"tags.{PARENT_TAG}"].dropna().unique()
            for run_id in parent[:1]:
                tracker.log_artifact(run_id, Path(plot))
                print(f"logged as an artifact of the suite's parent run {run_id}")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    import subprocess

    from disentangle.tracking import resolve_uri

    uri = resolve_uri(args.tracking_uri)
    if uri.startswith(("http://", "https://")):
        raise UsageError(f"{uri} is a tracking server: open it in a browser")
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
               "--host", args.host, "--port", str(args.port)]
    print(f"MLflow UI on http://{args.host}:{args.port} for {uri} (Ctrl-C stops it)")
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 0


def cmd_list(args: argparse.Namespace) -> int:
    registry = _registry(quiet=True)
    for kind in KINDS:
        entries = sorted(registry.entries[kind].values(), key=lambda e: e.name)
        print(f"{kind}s:")
        width = max([22] + [len(e.name) for e in entries])
        for e in entries:
            print(f"  {e.name:{width}s} {e.distribution:24s} {e.summary}")
        if not entries:
            print("  (none)")
    if registry.failures:
        print("plugins that failed to load:")
        for failure in registry.failures:
            print(f"  {failure}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    registry = _registry()
    entry = registry.get("model", args.model)
    model_cls = entry.obj
    defaults, steps = {}, model_cls.default_steps
    if args.dataset:
        dataset = registry.dataset(args.dataset)()
        defaults, steps = model_cls.dataset_defaults(dataset), model_cls.default_steps_for(dataset)
    # the values a run would use: a config may derive unset options from others
    resolved = to_dict(instantiate(model_cls.Config, defaults, args.model))
    print(f"{entry.name} ({entry.distribution}): {entry.summary}")
    print(f"default schedule: {steps} steps")
    print("hyper-parameters (set with --set KEY=VALUE):")
    rows = fields_help(model_cls.Config)
    width = max(len(type_text) for _, type_text, _, _ in rows)
    for name, type_text, _, text in rows:
        value = resolved[name]
        shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
        print(f"  {name:20s}  {type_text:{width}s}  {str(shown):14s}  {text}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from disentangle.datasets import data_home

    dataset_cls = _registry().dataset(args.dataset)
    path = dataset_cls.fetch(data_home(args.data_dir))
    print(f"{args.dataset}: files ready in {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``disentangle`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        return args.handler(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
