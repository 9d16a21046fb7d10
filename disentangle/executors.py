"""Where a suite's runs execute: one after another here, or as tasks on a Ray cluster.

Both executors hand each spec to :func:`disentangle.suites.run_spec`, which skips finished
runs and resumes interrupted ones, so either can be stopped and restarted at any time (a Ray
cluster included) without repeating work. Ray is optional (``pip install ".[ray]"`` from a
clone, or ``pip install "disentangle-bench[ray]"``) and imported only by the Ray executor.
"""

from __future__ import annotations

import os
from typing import Any

from tqdm import tqdm

from disentangle.errors import UsageError
from disentangle.registry import Registry, get_registry
from disentangle.suites import Outcome, RunSpec, Suite, run_spec


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
