"""MLflow tracking: where runs, their metrics and their artifacts are recorded.

The default store is MLflow's local SQLite file ``mlflow.db`` in the working directory, with
artifacts under ``./mlruns``; ``--tracking-uri`` or ``MLFLOW_TRACKING_URI`` select any other
store or tracking server. MLflow is imported only when a tracker is made, so commands that
do not track stay quick.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from disentangle.errors import UsageError, first_line
from disentangle.journal import Journal
from disentangle.stores import check_store, resolve_uri

#: MLflow's batch limits: at most this many params / metrics per ``log_batch`` call.
_BATCH = 100


def _store_errors() -> tuple[type[BaseException], ...]:
    from mlflow.exceptions import MlflowException

    return (MlflowException, OSError)


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def run_cache(run_id: str) -> Path:
    """This machine's folder for one run: its lock, its checkpoint when the artifact store
    is remote, and tracking records waiting for upload.

    Under ``$DISENTANGLE_CACHE`` (default ``~/.cache/disentangle``), in ``runs/<run id>``.
    """
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", run_id):
        raise UsageError(f"{run_id!r} is not a run id (letters, digits, '-' and '_' only)")
    return runs_cache() / run_id


def cache_home() -> Path:
    """This machine's folder for local files that outlive a process (run folders, fitted
    evaluation helpers): ``$DISENTANGLE_CACHE``, by default ``~/.cache/disentangle``."""
    return Path(os.environ.get("DISENTANGLE_CACHE") or Path.home() / ".cache" / "disentangle")


def runs_cache() -> Path:
    """The folder of every run's local files on this machine (see :func:`run_cache`)."""
    return cache_home() / "runs"


def ui_command(uri: str) -> str:
    """The shell command that opens the MLflow UI on this store."""
    return f"mlflow ui --backend-store-uri '{uri}'"


class Tracker:
    """A thin, explicit wrapper over ``MlflowClient``: every call names its run."""

    #: how often, at most, records waiting in a journal are tried again
    retry_seconds = 30.0

    def __init__(self, uri: str | None = None, warn: Callable[[str], None] | None = None):
        self.uri = resolve_uri(uri)
        check_store(self.uri)
        # a tracking server that goes away mid-run should cost seconds, not minutes of retries
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        from mlflow.tracking import MlflowClient

        # (after the import: importing mlflow sets its own loggers to INFO)
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self.client = MlflowClient(tracking_uri=self.uri)
        self.warn = warn or _warn
        self._journals: dict[str, Journal] = {}
        self._retry_at: dict[str, float] = {}

    # -- runs --------------------------------------------------------------------------------

    def start_run(self, experiment: str, run_name: str, tags: dict[str, str]) -> str:
        """Create a run in ``experiment`` (created when missing); returns its id."""
        try:
            found = self.client.get_experiment_by_name(experiment)
            experiment_id = (found.experiment_id if found
                             else self.client.create_experiment(experiment))
            return self.client.create_run(experiment_id, run_name=run_name,
                                          tags=tags).info.run_id
        except _store_errors() as exc:
            raise UsageError(f"cannot create a run in tracking store {self.uri}: "
                             f"{type(exc).__name__}: {exc}") from None

    def get_run(self, run_id: str) -> Any:
        """The MLflow run ``run_id``; a UsageError when the store has no such run."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_run(run_id)
        except MlflowException:
            raise UsageError(f"no run with id {run_id!r} in tracking store {self.uri}") from None

    def logged_steps(self, run_id: str) -> dict[str, int]:
        """The last step at which each of the run's metrics is logged in the store."""
        keys = self.get_run(run_id).data.metrics
        return {key: max(m.step for m in self.client.get_metric_history(run_id, key))
                for key in keys}

    def reopen(self, run_id: str) -> None:
        """Mark a stopped run as running again (resume continues the same run)."""
        self.client.update_run(run_id, status="RUNNING")

    # -- data --------------------------------------------------------------------------------
    # Every record goes through _deliver: when the store fails mid-run, training goes on and
    # the record waits in the run's journal on this machine until the store answers again
    # (or until `disentangle sync`).

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        self._deliver(run_id, "params", {"params": params})

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int) -> None:
        self._deliver(run_id, "metrics", {"metrics": {k: float(v) for k, v in metrics.items()},
                                          "step": step, "time": int(time.time() * 1000)})

    def log_artifact(self, run_id: str, path: Path, folder: str | None = None) -> None:
        self._deliver(run_id, "artifact", {"path": str(path), "folder": folder})

    def log_artifacts(self, run_id: str, folder: Path) -> None:
        self._deliver(run_id, "artifacts", {"path": str(folder)})

    def end(self, run_id: str, status: str) -> None:
        """Close the run with MLflow status FINISHED, FAILED or KILLED."""
        self._deliver(run_id, "end", {"status": status})
        self.flush(run_id, force=True)

    def pending(self, run_id: str) -> Journal:
        """The run's records that have not reached the store yet."""
        if run_id not in self._journals:
            self._journals[run_id] = Journal(run_cache(run_id) / "pending", self.uri)
        return self._journals[run_id]

    def flush(self, run_id: str, force: bool = False) -> bool:
        """Send the run's waiting records in order; True when none is left.

        Without ``force`` it tries at most once every :attr:`retry_seconds`.
        """
        journal = self.pending(run_id)
        if not journal.records():
            return True
        now = time.monotonic()
        if not force and now < self._retry_at.get(run_id, 0.0):
            return False
        self._retry_at[run_id] = now + self.retry_seconds
        records = journal.records()
        for done, record in enumerate(records):
            try:
                self._apply(run_id, record["action"], journal.payload(record))
            except _store_errors():
                journal.keep(records[done:])
                return False
        journal.keep([])
        self.warn(f"tracking store {self.uri} reachable again: {len(records)} waiting "
                  f"record(s) of run {run_id} sent")
        return True

    def _deliver(self, run_id: str, action: str, payload: dict[str, Any]) -> None:
        if self.flush(run_id):
            try:
                self._apply(run_id, action, payload)
                return
            except _store_errors() as exc:
                self.warn(f"tracking store {self.uri} failed ({type(exc).__name__}: "
                          f"{first_line(exc)}); training goes on "
                          f"and records wait in {self.pending(run_id).folder}")
                self._retry_at[run_id] = time.monotonic() + self.retry_seconds
        self.pending(run_id).add(action, payload)

    def _apply(self, run_id: str, action: str, payload: dict[str, Any]) -> None:
        from mlflow.entities import Metric, Param

        if action == "params":
            items = [Param(k, str(v)) for k, v in payload["params"].items()]
            for start in range(0, len(items), _BATCH):
                self.client.log_batch(run_id, params=items[start:start + _BATCH])
        elif action == "metrics":
            items = [Metric(k, v, payload["time"], payload["step"])
                     for k, v in payload["metrics"].items()]
            for start in range(0, len(items), _BATCH):
                self.client.log_batch(run_id, metrics=items[start:start + _BATCH])
        elif action == "artifact":
            self.client.log_artifact(run_id, payload["path"], payload["folder"])
        elif action == "artifacts":
            self.client.log_artifacts(run_id, payload["path"])
        elif action == "end":
            self.client.set_terminated(run_id, status=payload["status"])
        else:
            raise ValueError(f"unknown tracking record {action!r}")

    def local_artifact_dir(self, run_id: str) -> Path | None:
        """The run's artifact folder when it is on this machine's file system, else None."""
        uri = self.get_run(run_id).info.artifact_uri
        parsed = urllib.parse.urlparse(uri)
        if parsed.scheme in ("", "file"):
            return Path(urllib.request.url2pathname(parsed.path))
        return None

    def download(self, run_id: str, artifact: str, dest: Path) -> Path | None:
        """Fetch one artifact of the run into ``dest``; None when the run has no such file."""
        from mlflow.exceptions import MlflowException

        dest.mkdir(parents=True, exist_ok=True)
        try:
            return Path(self.client.download_artifacts(run_id, artifact, str(dest)))
        except (MlflowException, OSError):
            return None
