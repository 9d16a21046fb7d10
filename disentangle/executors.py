"""Where a suite's runs execute: one after another here, or as tasks on a Ray cluster.

Both executors hand each spec to :func:`run_spec`, which finds the spec's logged run by its
suite key, skips it when finished and resumes it when interrupted, so either can be stopped
and restarted at any time (a Ray cluster included) without repeating work. Ray is optional
(``pip install ".[ray]"`` from a clone, or ``pip install "disentangle-bench[ray]"``) and
imported only by the Ray executor.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from disentangle.errors import NoCheckpoint, UsageError
from disentangle.lease import settle
from disentangle.loop import train
from disentangle.plan import plan_new
from disentangle.registry import Registry, get_registry
from disentangle.run import new_run, open_run
from disentangle.suites import KEY_TAG, PARENT_TAG, SUITE_TAG, RunSpec, Suite


@dataclass
class Outcome:
    """What happened to one spec: skipped (already finished), resumed, started, or failed."""

    spec: RunSpec
    action: str
    run_id: str = ""
    status: str = ""
    scores: dict[str, float] = field(default_factory=dict)


def suite_parent(tracker: Any, suite: Suite) -> str:
    """The id of the suite's parent run (created on first use), which groups its runs."""
    from mlflow.exceptions import MlflowException

    client = tracker.client
    experiment = client.get_experiment_by_name(suite.experiment)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(
        suite.experiment)
    try:
        found = client.search_runs([experiment_id], f"tags.`{SUITE_TAG}` = '{suite.name}' and "
                                   f"tags.`{KEY_TAG}` = 'parent'", max_results=1)
    except MlflowException as exc:
        raise UsageError(f"cannot search tracking store {tracker.uri}: {exc}") from None
    if found:
        return found[0].info.run_id
    run = client.create_run(experiment_id, run_name=f"suite {suite.name}",
                            tags={SUITE_TAG: suite.name, KEY_TAG: "parent",
                                  "mlflow.note.content": suite.description})
    return run.info.run_id


def existing_run(tracker: Any, spec: RunSpec) -> Any:
    """The latest logged run of ``spec`` (matched by suite key), or None."""
    client = tracker.client
    experiment = client.get_experiment_by_name(spec.config.experiment)
    if experiment is None:
        return None
    runs = client.search_runs([experiment.experiment_id], f"tags.`{KEY_TAG}` = '{spec.key}'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return settle(tracker, runs[0]) if runs else None


def run_spec(spec: RunSpec, suite_name: str, parent_id: str, registry: Registry, tracker: Any,
             retry_failed: bool = False, echo: Callable[[str], None] = print,
             progress: bool = True) -> Outcome:
    """Bring one spec to completion: skip it when finished, resume it, or start it.

    This is the whole unit of work of a suite, the same for every executor: running it
    twice, or after a crash anywhere, never repeats a finished run.
    """
    found = existing_run(tracker, spec)
    if found is not None and found.info.status == "FINISHED":
        return Outcome(spec, "skipped", found.info.run_id, "FINISHED")
    if found is not None and found.info.status == "FAILED" and not retry_failed:
        return Outcome(spec, "failed before", found.info.run_id, "FAILED")
    run = None
    if found is not None and found.info.status != "FAILED":
        try:
            run = open_run(found.info.run_id, registry, tracker, restart=True)
            action = "resumed"
        except NoCheckpoint:  # died before it recorded its configuration
            tracker.end(found.info.run_id, "FAILED")
    if run is None:
        tags = {SUITE_TAG: suite_name, KEY_TAG: spec.key, PARENT_TAG: parent_id}
        plan = plan_new(spec.config, dict(spec.overrides), registry)
        run = new_run(plan, registry, tracker, tags, echo=echo)
        action = "started"
    result = train(run, echo=echo, progress=progress)
    return Outcome(spec, action, result.run_id, result.status, result.scores)


def _report(bar: tqdm, outcome: Outcome) -> None:
    bar.write(f"{outcome.action:>13s}: {outcome.spec.label} -> run {outcome.run_id} "
              f"{outcome.status.lower()}")
    bar.update(1)


def run_local(suite: Suite, parent: str, registry: Registry, tracker: Any,
              retry_failed: bool = False, progress: bool = True) -> list[Outcome]:
    """Run the specs one after another in this process; stop at the first Ctrl-C."""
    outcomes = []
    with tqdm(total=len(suite.specs), desc=f"suite {suite.name}", unit="run",
              disable=not progress, dynamic_ncols=True) as bar:
        for spec in suite.specs:
            bar.set_postfix_str(spec.label)
            outcome = run_spec(spec, suite.name, parent, registry, tracker, retry_failed,
                               echo=bar.write, progress=progress)
            outcomes.append(outcome)
            _report(bar, outcome)
            if outcome.status == "KILLED":
                break
    return outcomes


def _ray_task(spec: RunSpec, suite_name: str, parent: str, uri: str,
              retry_failed: bool) -> Outcome:
    """One suite run inside a Ray worker: a normal single-device run against ``uri``."""
    from disentangle.tracking import Tracker

    return run_spec(spec, suite_name, parent, get_registry(), Tracker(uri), retry_failed,
                    progress=False)


def run_ray(suite: Suite, parent: str, uri: str, address: str | None = None,
            cpus_per_run: float = 1, gpus_per_run: float = 0, retry_failed: bool = False,
            progress: bool = True) -> list[Outcome]:
    """Run every spec as one Ray task (``address``: an existing cluster; None: start one here).

    Every worker logs to the tracking store ``uri``, which must be reachable from all of
    them: on a cluster, an ``mlflow server`` with a SQL backend and a served artifact root.
    """
    try:
        import ray
    except ImportError:
        raise UsageError('the Ray executor needs Ray: pip install "disentangle-bench[ray]" '
                         '(or ".[ray]" from a clone)') from None
    if uri.startswith("sqlite:") and address not in (None, "local"):
        raise UsageError(f"{uri} is a file on this machine, which workers on other machines "
                         "cannot reach; start an MLflow tracking server and pass its "
                         "--tracking-uri (see the README's cluster section)")
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {k: v for k, v in os.environ.items()
                                           if k.startswith(("DISENTANGLE_", "MLFLOW_"))}})
    task = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=1)(_ray_task)
    pending = {task.remote(spec, suite.name, parent, uri, retry_failed): spec
               for spec in suite.specs}
    outcomes = []
    with tqdm(total=len(pending), desc=f"suite {suite.name} on Ray", unit="run",
              disable=not progress, dynamic_ncols=True) as bar:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            spec = pending.pop(done[0])
            try:
                outcome = ray.get(done[0])
            except ray.exceptions.RayError as exc:
                outcome = Outcome(spec, "crashed", status="FAILED")
                bar.write(f"{spec.label}: the Ray task failed: {exc}")
            outcomes.append(outcome)
            _report(bar, outcome)
    return outcomes
