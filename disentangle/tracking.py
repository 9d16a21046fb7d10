"""MLflow tracking: where runs, their metrics and their artifacts are recorded.

The default store is MLflow's local SQLite file ``mlflow.db`` in the working directory, with
artifacts under ``./mlruns``; ``--tracking-uri`` or ``MLFLOW_TRACKING_URI`` select any other
store or tracking server. MLflow is imported only when a tracker is made, so commands that
do not track stay quick.
"""

from __future__ import annotations

import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from disentangle.errors import UsageError

DEFAULT_URI = "sqlite:///mlflow.db"
#: MLflow's batch limits: at most this many params / metrics per ``log_batch`` call.
_BATCH = 100


def resolve_uri(uri: str | None = None) -> str:
    """The tracking URI to use, with a relative SQLite path made absolute."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str(Path(uri[len("sqlite:///"):]).resolve())
    elif "://" not in uri:
        uri = str(Path(uri).resolve())
    return uri


def ui_command(uri: str) -> str:
    """The shell command that opens the MLflow UI on this store."""
    return f"mlflow ui --backend-store-uri '{uri}'"


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail early, with a clear message, when the store cannot be used."""
    scheme = urllib.parse.urlparse(uri).scheme
    if scheme == "sqlite":
        folder = Path(uri[len("sqlite:///"):]).parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise UsageError(f"tracking store {uri}: folder {folder} does not exist or is "
                             "not writable")
    elif scheme in ("http", "https"):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):  # noqa: S310
                pass
        except (urllib.error.URLError, OSError) as exc:
            raise UsageError(f"cannot reach the MLflow tracking server at {uri}: "
                             f"{getattr(exc, 'reason', exc)}") from None


class Tracker:
    """A thin, explicit wrapper over ``MlflowClient``: every call names its run."""

    def __init__(self, uri: str | None = None):
        self.uri = resolve_uri(uri)
        check_reachable(self.uri)
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self.uri)

    # -- runs --------------------------------------------------------------------------------

    def start_run(self, experiment: str, run_name: str, tags: dict[str, str]) -> str:
        """Create a run in ``experiment`` (created when missing); returns its id."""
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        return self.client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id

    def get_run(self, run_id: str) -> Any:
        """The MLflow run ``run_id``; a UsageError when the store has no such run."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_run(run_id)
        except MlflowException:
            raise UsageError(f"no run with id {run_id!r} in tracking store {self.uri}") from None

    def reopen(self, run_id: str) -> None:
        """Mark a stopped run as running again (resume continues the same run)."""
        self.client.update_run(run_id, status="RUNNING")

    def end(self, run_id: str, status: str) -> None:
        """Close the run with MLflow status FINISHED, FAILED or KILLED."""
        self.client.set_terminated(run_id, status=status)

    # -- data --------------------------------------------------------------------------------

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(items), _BATCH):
            self.client.log_batch(run_id, params=items[start:start + _BATCH])

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        for start in range(0, len(items), _BATCH):
            self.client.log_batch(run_id, metrics=items[start:start + _BATCH])

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_tag(run_id, key, value)

    def log_artifact(self, run_id: str, path: Path, folder: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), folder)

    def log_artifacts(self, run_id: str, folder: Path) -> None:
        self.client.log_artifacts(run_id, str(folder))

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
