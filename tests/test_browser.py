"""End to end in a real browser: the MLflow UI shows the runs and their scores.

Runs headless Chromium against ``mlflow ui`` on loopback. Skipped, with the reason, when no
Chromium is installed (CI installs Debian's ``chromium`` package where it can).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from disentangle.cli import main

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium here (install Debian's chromium package to run the "
                             "browser test)")


def _browse(url: str, screenshot: Path | None = None) -> str:
    """The page's text after its scripts ran (or a screenshot of it)."""
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1600,1000",
            "--virtual-time-budget=30000"]
    args += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    done = subprocess.run([*args, url], capture_output=True, text=True, timeout=180)
    text = re.sub(r"<[^>]+>", " ", done.stdout)
    return re.sub(r"\s+", " ", text)


def test_the_mlflow_ui_shows_both_runs_and_their_mig(with_toy, tmp_path, http_service):
    for seed in ("0", "1"):
        assert main(["run", "toy_autoencoder", "--dataset", "toy_blobs", "--seed", seed,
                     "--steps", "10", "--metrics", "mig", "--no-progress"]) == 0
    uri = f"sqlite:///{Path('mlflow.db').resolve()}"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("toy_blobs")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2

    command = [sys.executable, "-m", "disentangle.cli", "ui", "--port"]
    with http_service(lambda port: [*command, str(port)], "the MLflow UI") as base:
        page = f"{base}/#/experiments/{experiment.experiment_id}/runs"
        listing = _browse(page)
        for run in runs:
            assert run.info.run_name in listing, f"{run.info.run_name} not on the runs page"
        for run in runs:
            shown = _browse(f"{page}/{run.info.run_id}")
            mig = run.data.metrics["eval/mig"]
            assert re.search(rf"eval/mig {re.escape(repr(mig))[:8]}", shown), (mig, shown[:500])
        shot = tmp_path / "experiment.png"
        _browse(page, shot)
        assert shot.stat().st_size > 10_000
