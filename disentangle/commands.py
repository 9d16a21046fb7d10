"""What each ``disentangle`` command does (the command line itself is :mod:`disentangle.cli`).

Every error the user can fix is raised as a :class:`~disentangle.errors.UsageError`, which
the command line prints as one ``error: ...`` line with exit code 2.
"""

from __future__ import annotations

import argparse
import inspect
import math
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from disentangle.config import RunConfig, fields_help, instantiate, split_assignments, to_dict
from disentangle.errors import UsageError
from disentangle.registry import KINDS, Registry, get_registry

if TYPE_CHECKING:
    import pandas as pd

    from disentangle.selection import Selection
    from disentangle.tracking import Tracker


def _registry(quiet: bool = False) -> Registry:
    registry = get_registry()
    if not quiet:
        for failure in registry.failures:
            print(f"warning: {failure}", file=sys.stderr)
    return registry


def _metric_names(text: str | None) -> tuple[str, ...] | None:
    return tuple(m.strip() for m in text.split(",") if m.strip()) if text is not None else None


def _run_config(args: argparse.Namespace) -> RunConfig:
    given = {
        "model": args.model, "dataset": args.dataset, "steps": args.steps,
        "batch_size": args.batch_size, "seed": args.seed, "device": args.device,
        "eval_every": args.eval_every, "checkpoint_every": args.checkpoint_every,
        "data_dir": args.data_dir, "experiment": args.experiment,
        "data_options": tuple(args.data_options) or None,
        "metrics": _metric_names(args.metrics), "precision": args.precision,
        "compile": args.compile or None,
    }
    return instantiate(RunConfig, {k: v for k, v in given.items() if v is not None}, "run")


def cmd_run(args: argparse.Namespace) -> int:
    from disentangle.device import resolve_device
    from disentangle.loop import train
    from disentangle.plan import plan_new
    from disentangle.run import new_run, open_run
    from disentangle.tracking import Tracker, ui_command

    registry = _registry()
    overrides = split_assignments(args.overrides)
    if args.resume:
        if overrides:
            raise UsageError("--set cannot change the hyper-parameters of a resumed run")
        tracker = Tracker(args.tracking_uri)
        run = open_run(args.resume, registry, tracker, restart=True, steps=args.steps,
                       device=args.device)
        for key in ("model", "dataset"):
            given, stored = getattr(args, key), getattr(run.plan.settings, key)
            if given is not None and given != stored:
                raise UsageError(f"run {args.resume} trained {key} {stored!r}, not {given!r}")
    else:
        if args.model is None:
            raise UsageError("name a model to train (see `disentangle list`) or --resume RUN_ID")
        plan = plan_new(_run_config(args), overrides, registry)  # before the store
        resolve_device(plan.settings.device)
        tracker = Tracker(args.tracking_uri)
        run = new_run(plan, registry, tracker)
    result = train(run, progress=not args.no_progress)
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
    from disentangle.artifacts import log_evaluation
    from disentangle.evaluation import parse_metric_params
    from disentangle.run import open_run
    from disentangle.tracking import Tracker

    registry = _registry()
    tracker = Tracker(args.tracking_uri)
    run = open_run(args.run_id, registry, tracker, metrics=_metric_names(args.metrics),
                   device=args.device)
    params = parse_metric_params(registry.metric, split_assignments(args.params))
    print(f"evaluating run {args.run_id} at step {run.step} on {run.device}...")
    result = log_evaluation(run, print, params, progress=True)
    for key, value in result.scores.items():
        print(f"  {key:32s} {value:.4f}  ({result.seconds.get(key.split('.')[0], 0):.1f} s)"
              if "." not in key else f"  {key:32s} {value:.4f}")
    print(f"logged as eval/<score> at step {run.step} of run {args.run_id}; "
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
    from disentangle.device import resolve_device
    from disentangle.tracking import Tracker

    registry = _registry()
    suite = suites.load_suite(args.suite, registry)
    if args.executor == "local":  # every device the suite asks for must be here
        for name in sorted({spec.config.device for spec in suite.specs}):
            resolve_device(name)
    tracker = Tracker(args.tracking_uri)
    if args.dry_run:
        for spec in suite.specs:
            found = executors.existing_run(tracker, spec)
            state = found.info.status.lower() if found is not None else "new"
            print(f"  {state:9s} {spec.label}  [{spec.key}]")
        print(f"suite {suite.name}: {len(suite.specs)} runs in experiment {suite.experiment}")
        return 0
    parent = executors.suite_parent(tracker, suite)
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


def _output_file(text: str, what: str) -> Path:
    """A file the user asked to have written: its folder must exist (none is created)."""
    path = Path(text)
    if not path.name or not path.parent.is_dir():
        raise UsageError(f"{what} {text!r}: folder {str(path.parent)!r} does not exist")
    return path


def _compared(tracker: Tracker, experiment: str | None, suite: str | None,
              metric_text: str | None) -> tuple[pd.DataFrame, list[str], pd.DataFrame]:
    """The finished runs that match, the scores to compare, and their per-run table; a
    UsageError names what is missing (an unknown suite, a suite with no finished run, no
    scores)."""
    from disentangle import compare
    from disentangle.suites import check_name

    if suite is not None:
        check_name(suite)
    runs = compare.load_runs(tracker.uri, experiment, suite)
    if runs.empty:
        if suite is None:
            raise UsageError(f"no finished runs in {tracker.uri}")
        everything = compare.load_runs(tracker.uri, experiment, suite, finished_only=False)
        if everything.empty:
            raise UsageError(f"no suite {suite!r} in {tracker.uri} (run it with "
                             f"`disentangle bench {suite}`)")
        states = everything["status"].value_counts()
        raise UsageError(f"suite {suite!r} has no finished runs yet ("
                         + ", ".join(f"{n} {s.lower()}" for s, n in states.items()) + ")")
    metrics = list(_metric_names(metric_text) or compare.metric_names(runs))
    if not metrics:
        raise UsageError(f"the {len(runs)} matching run(s) logged no eval scores to compare")
    return runs, metrics, compare.tidy(runs, metrics)


def _suite_parent(runs: pd.DataFrame) -> str | None:
    """The MLflow run id of the suite's parent run, if the runs have one."""
    from disentangle.suites import PARENT_TAG

    column = f"tags.{PARENT_TAG}"
    parents = runs[column].dropna().unique() if column in runs else []
    return str(parents[0]) if len(parents) else None


def cmd_compare(args: argparse.Namespace) -> int:
    from disentangle import compare
    from disentangle.tracking import Tracker

    plot = args.plot if args.plot is not None else (
        f"comparison-{args.suite}.png" if args.suite else None)
    csv = _output_file(args.csv, "--csv") if args.csv is not None else None
    plot_path = _output_file(plot, "--plot") if plot is not None else None
    curves_path = _output_file(args.curves, "--curves") if args.curves is not None else None
    tracker = Tracker(args.tracking_uri)
    runs, metrics, table = _compared(tracker, args.experiment, args.suite, args.metrics)
    shown = compare.formatted(compare.summarize(table, metrics), metrics)
    print(compare.markdown(shown) if args.markdown else shown.to_string(index=False))
    title = f"suite {args.suite}" if args.suite else (args.experiment or "all runs")
    written = []
    try:
        if csv is not None:
            table.to_csv(csv, index=False)
            print(f"per-run table written to {csv}")
        if plot_path is not None:
            written.append(compare.plot(table, metrics, plot_path, title))
            print(f"box plots written to {plot_path}")
        if curves_path is not None:
            history = compare.histories(tracker.uri, list(table["run_id"]))
            written.append(compare.curves(table, history, curves_path, title))
            print(f"curves over training written to {curves_path}")
    except OSError as exc:
        raise UsageError(f"cannot write {exc.filename or 'the output'}: {exc.strerror or exc}"
                         ) from None
    parent = _suite_parent(runs) if args.suite else None
    if parent is not None and written:
        for path in written:
            tracker.log_artifact(parent, path)
        print(f"logged as artifacts of the suite's parent run {parent}")
    return 0


def _writable_folder(text: str, what: str) -> Path:
    """A folder the user asked to have written, created if needed; a UsageError when it
    cannot be created or written."""
    path = Path(text)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".disentangle-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"{what} {text!r} cannot be written: {exc.strerror or exc}") from None
    return path


def cmd_report(args: argparse.Namespace) -> int:
    from disentangle import report
    from disentangle.tracking import Tracker

    tracker = Tracker(args.tracking_uri)
    _, metrics, table = _compared(tracker, None, args.suite, args.metrics)
    out = _writable_folder(args.out or f"report-{args.suite}", "--out")
    try:
        index = report.write(tracker.uri, args.suite, table, metrics, out)
    except OSError as exc:
        raise UsageError(f"cannot write {exc.filename or 'the report'}: "
                         f"{exc.strerror or exc}") from None
    print(f"report of suite {args.suite} ({len(table)} runs) written to {index}")
    return 0


def cmd_select(args: argparse.Namespace) -> int:
    from disentangle import selection
    from disentangle.run import open_run
    from disentangle.tracking import Tracker

    for name, value, least in (("--votes", args.votes, 1), ("--group-size", args.group_size, 2),
                               ("--points", args.points, 10)):
        if value is not None and value < least:
            raise UsageError(f"{name} must be at least {least}, not {value}")
    registry = _registry()
    tracker = Tracker(args.tracking_uri)
    runs, metrics, table = _compared(tracker, None, args.suite, args.metrics)
    if args.dataset is not None:
        table = table[table["dataset"] == args.dataset].reset_index(drop=True)
    counts = table["dataset"].value_counts()
    if len(counts) > 1:
        raise UsageError(f"suite {args.suite!r} has runs of {len(counts)} datasets ("
                         + ", ".join(f"{d}: {n}" for d, n in sorted(counts.items()))
                         + "); runs are ranked against runs of the same data: choose one "
                           "with --dataset")
    if len(table) < 3:
        where = f" on {args.dataset}" if args.dataset is not None else ""
        raise UsageError(f"suite {args.suite!r} has {len(table)} finished run(s){where}; "
                         f"ranking needs at least 3")
    out = _writable_folder(args.out or f"selection-{args.suite}", "--out")
    print(f"loading {len(table)} runs of suite {args.suite}...", flush=True)
    handles = [open_run(run_id, registry, tracker, device=args.device)
               for run_id in table["run_id"]]
    models = [h.model for h in handles]
    method = args.method or ("centrality" if not selection.unable(models, "centrality")
                             else "udr")
    refused = selection.unable(models, method)
    if refused:
        names = sorted({table["model"][k] for k in refused})
        raise UsageError(f"--method {method} needs {selection.NEEDS[method]}; "
                         f"{', '.join(names)} cannot: use --method udr")
    dataset, points = handles[0].plan.dataset, args.points or selection.POINTS.get(method)
    if method == "centrality":
        detail = f"{args.votes} groups of {args.group_size} generated images per pair"
        pairwise = selection.centrality_similarity(models, args.votes, args.group_size,
                                                   args.seed, progress=not args.no_progress)
        scores = selection.centrality(pairwise)
    elif method == "udr":
        detail = f"{points:,} real images, {args.similarity} similarity"
        codes, active = selection.udr_codes(models, dataset, points, args.seed)
        scores, pairwise = selection.udr(codes, active, args.similarity)
    else:
        detail = f"{points:,} real images"
        scores, pairwise = selection.information_scores(models, dataset, points,
                                                        args.seed), None
    chosen = selection.ranked(table, scores, pairwise, method, detail)
    _print_selection(chosen, metrics, args.suite)
    title = f"suite {args.suite}: {method} ({detail})"
    try:
        written = selection.write(chosen, metrics, out, title)
    except OSError as exc:
        raise UsageError(f"cannot write {exc.filename or 'the selection'}: "
                         f"{exc.strerror or exc}") from None
    print(f"ranking{', pairwise matrix' if chosen.pairwise is not None else ''} and plot "
          f"written to {out}")
    parent = _suite_parent(runs)
    if parent is not None:
        for path in written:
            tracker.log_artifact(parent, path, f"selection/{method}")
        print(f"logged as artifacts selection/{method}/ of the suite's parent run {parent}")
    return 0


def _print_selection(chosen: Selection, metrics: list[str], suite: str) -> None:
    """The ranking, the rank correlation with each supervised score, and the selected run
    against the median run."""
    from disentangle import selection

    table = chosen.table
    print(f"suite {suite}: {len(table)} runs on {table['dataset'].iloc[0]} ranked by "
          f"{chosen.method} ({chosen.detail}), without factor labels")
    columns = ["model", "setting"] if table["setting"].astype(bool).any() else ["model"]
    shown = table[["rank", "score", *columns, "seed", "run_id", *metrics]].copy()
    shown["score"] = shown["score"].map(lambda v: f"{v:.4f}")
    for m in metrics:
        shown[m] = shown[m].map(lambda v: f"{v:.4f}")
    print(shown.to_string(index=False))
    rho = selection.correlations(chosen, metrics)
    print(f"Spearman rank correlation of the {chosen.method} score with each supervised "
          "score:")
    for m in metrics:
        print(f"  {m:32s} " + (f"{rho[m]:+.3f}" if rho[m] == rho[m] else
                               "undefined (a constant column)"))
    best = chosen.selected
    print(f"selected: run {best['run_id']} ({best['model']} seed {best['seed']})")
    for m in metrics:
        print(f"  {m:32s} {best[m]:.4f}  (median run {table[m].median():.4f})")


def die_with_parent() -> None:
    """In a child process: ask Linux to send it SIGTERM when its parent dies."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def cmd_ui(args: argparse.Namespace) -> int:
    import signal
    import subprocess

    from disentangle.stores import check_store, resolve_uri

    uri = resolve_uri(args.tracking_uri)
    if uri.startswith(("http://", "https://")):
        raise UsageError(f"{uri} is a tracking server: open it in a browser")
    if not 1 <= args.port <= 65535:
        raise UsageError(f"--port must lie in [1, 65535], not {args.port}")
    try:
        socket.getaddrinfo(args.host, args.port)
    except (OSError, UnicodeError) as exc:
        raise UsageError(f"--host {args.host!r} is not an address of this machine: {exc}"
                         ) from None
    check_store(uri)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
               "--host", args.host, "--port", str(args.port)]
    print(f"MLflow UI on http://{args.host}:{args.port} for {uri} (Ctrl-C stops it)",
          flush=True)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # the server runs in its own process group, which this command stops when it is stopped
    # (Ctrl-C, SIGTERM, SIGHUP); on Linux the kernel also stops it if this process is killed
    server = subprocess.Popen(command, start_new_session=True, preexec_fn=die_with_parent)
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def cmd_list(args: argparse.Namespace) -> int:
    registry = _registry(quiet=True)
    for kind in KINDS:
        entries = sorted(registry.entries[kind].values(), key=lambda e: e.name)
        print(f"{kind}s:")
        width = max([22] + [len(e.name) for e in entries])
        for e in entries:
            print(f"  {e.name:{width}s} {e.distribution:24s} {e.summary}")
            if kind == "dataset":
                print(f"  {'':{width}s} factors: {_factors_text(e.obj)}")
        if not entries:
            print("  (none)")
    if registry.failures:
        print("plugins that failed to load:")
        for failure in registry.failures:
            print(f"  {failure}")
    return 0


def _factors_text(dataset_cls: type) -> str:
    """A dataset's factors in order, each with its number of values; unordered ones marked."""
    return ", ".join(f"{name} {size}" + (" (categorical)"
                                         if name in dataset_cls.categorical_factors else "")
                     for name, size in zip(dataset_cls.factor_names, dataset_cls.factor_sizes))


def cmd_show(args: argparse.Namespace) -> int:
    registry = _registry()
    shown = [kind for kind in ("model", "metric", "dataset") if args.name in registry.entries[kind]]
    if not shown:
        raise UsageError(f"unknown model, metric or dataset {args.name!r}; " + "; ".join(
            f"{kind}s: {', '.join(sorted(registry.entries[kind]))}"
            for kind in ("model", "metric", "dataset")))
    for k, kind in enumerate(shown):
        if k:
            print()
        if kind == "model":
            _show_model(registry, args.name, args.dataset)
        elif kind == "metric":
            _show_metric(registry, args.name, args.dataset)
        else:
            _show_dataset(registry, args.name)
    return 0


def _show_dataset(registry: Registry, name: str) -> None:
    """A dataset's factors (the grid every metric samples), images and files."""
    entry = registry.get("dataset", name)
    cls = entry.obj
    sizes = cls.factor_sizes
    print(f"dataset {entry.name} ({entry.distribution}): {entry.summary}")
    print(f"images: {' x '.join(map(str, cls.image_shape))} (channels x height x width); "
          f"{int(math.prod(sizes)):,} factor combinations"
          + ("" if cls.deterministic else ", several images each (drawn at random)"))
    print("factors, in order:")
    width = max(len(n) for n in cls.factor_names)
    for factor, size in zip(cls.factor_names, sizes):
        kind = "categorical" if factor in cls.categorical_factors else "ordered"
        print(f"  {factor:{width}s}  {size:5d} values  {kind}")
    names = getattr(cls, "file_names", None)
    if names:
        what = names[0] if len(names) == 1 else f"{len(names)} files ({', '.join(names)})"
        print(f"file: {what} in DATA_DIR/{cls.folder}/ (DATA_DIR: --data-dir, "
              f"$DISENTANGLE_DATA or ~/.cache/disentangle/data); get it with "
              f"`disentangle data fetch {entry.name}`")


def _show_model(registry: Registry, name: str, dataset_name: str | None) -> None:
    entry = registry.get("model", name)
    model_cls = entry.obj
    with registry.blame("model", name, "its defaults, for show"):
        defaults, steps = {}, model_cls.default_steps
        if dataset_name is not None:
            with registry.blame("dataset", dataset_name, "construction, for show"):
                dataset = registry.dataset(dataset_name)()
            defaults = model_cls.dataset_defaults(dataset)
            steps = model_cls.default_steps_for(dataset)
        # the values a run would use: a config may derive unset options from others
        resolved = to_dict(instantiate(model_cls.Config, defaults, name))
        rows = fields_help(model_cls.Config)
    print(f"model {entry.name} ({entry.distribution}): {entry.summary}")
    print(f"default schedule: {steps} steps")
    print("hyper-parameters (set with --set KEY=VALUE):")
    width = max(len(type_text) for _, type_text, _, _ in rows)
    for field_name, type_text, _, text in rows:
        value = resolved[field_name]
        shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
        print(f"  {field_name:20s}  {type_text:{width}s}  {str(shown):14s}  {text}")


def _show_metric(registry: Registry, name: str, dataset_name: str | None) -> None:
    """A metric's reference page: summary, source, parameters, sample size, cost, definition."""
    entry = registry.get("metric", name)
    metric = entry.obj
    dataset_name = dataset_name or "dsprites"
    with registry.blame("dataset", dataset_name, "construction, for show"):
        dataset = registry.dataset(dataset_name)()
    with registry.blame("metric", name, "its parameters, for show"):
        parameters = metric.parameters()
        rows = metric.images_requested(dataset)
        definition = inspect.getdoc(inspect.getmodule(metric.core)) or "(no definition given)"
    print(f"metric {entry.name} ({entry.distribution}): {entry.summary}")
    print(f"source: {metric.source or '(not given)'}")
    print("parameters (set with --param " + name + ".NAME=VALUE):")
    for key, value in parameters.items():
        print(f"  {key:24s} {value}")
    if rows is not None:
        print(f"sample: {rows:,} factor rows of {dataset_name} at these settings")
    if metric.cost:
        print(f"cost beyond encoding: {metric.cost}")
    print()
    print(definition)


def cmd_fetch(args: argparse.Namespace) -> int:
    from disentangle.datasets import data_home

    dataset_cls = _registry().dataset(args.dataset)
    path = dataset_cls.fetch(data_home(args.data_dir))
    print(f"{args.dataset}: files ready in {path}")
    return 0
