"""End to end in a real browser: the MLflow UI shows the runs, their scores and pictures, and
a suite's report page shows its tables and images.

Runs headless Chromium against ``mlflow ui`` on loopback. Skipped, with the reason, when no
Chromium is installed (CI installs Debian's ``chromium`` package where it can).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from test_suites import SUITE as TINY_SUITE

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


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as answer:
        return answer.read()


def test_a_vae_run_shows_its_pictures_in_the_mlflow_ui(workdir, http_service):
    """After a beta_vae run on dSprites, the UI lists the run's pictures and serves the
    code-factor matrix, the reconstructions, the traversal figure and one GIF per code."""
    argv = ["run", "beta_vae", "--dataset", "dsprites", "--steps", "20", "--metrics", "mig",
            "--no-progress"]
    for item in ("channels=8,8", "dense_dim=16", "latent_dim=3"):
        argv += ["--set", item]
    assert main(argv) == 0
    client = MlflowClient(f"sqlite:///{Path('mlflow.db').resolve()}")
    experiment = client.get_experiment_by_name("dsprites")
    run = client.search_runs([experiment.experiment_id])[0]
    command = [sys.executable, "-m", "disentangle.cli", "ui", "--port"]
    with http_service(lambda port: [*command, str(port)], "the MLflow UI") as base:
        shown = _browse(f"{base}/#/experiments/{experiment.experiment_id}/runs/"
                        f"{run.info.run_id}/artifacts")
        for name in ("traversals.png", "reconstructions.png", "samples.png", "eval"):
            assert name in shown, f"{name} not among the run's artifacts in the UI"
        served = {path: _fetch(f"{base}/get-artifact?path={path}&run_uuid={run.info.run_id}")
                  for path in ("eval/20/code_factor_mi.png", "eval/20/code_factor_mi.json",
                               "reconstructions.png", "traversals.png",
                               *(f"traversals/latent_{j}.gif" for j in range(3)))}
    matrix = json.loads(served.pop("eval/20/code_factor_mi.json"))
    assert matrix["codes"] == ["latent_0", "latent_1", "latent_2"]
    assert matrix["factors"] == ["shape", "scale", "orientation", "posX", "posY"]
    for path, data in served.items():
        magic = b"GIF89a" if path.endswith(".gif") else b"\x89PNG"
        assert data.startswith(magic), path


def test_a_suite_report_opens_in_the_browser_with_its_tables_and_pictures(
        with_toy, tmp_path):
    Path("tiny.yaml").write_text(TINY_SUITE)
    assert main(["bench", "tiny.yaml", "--no-progress"]) == 0
    assert main(["report", "--suite", "tiny", "--out", "report"]) == 0
    page = Path("report/index.html").resolve()
    shown = _browse(page.as_uri())
    assert "Comparison" in shown and "toy_autoencoder" in shown and "lr=0.01" in shown
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=180).stdout
    sources = re.findall(r'<img src="([^"]+)"', dom)
    assert {"comparison.png", "curves.png"} <= set(sources)
    assert any(s.endswith("/code_factor_mi.png") for s in sources)
    assert all((page.parent / s).is_file() for s in sources)
    assert "://" not in page.read_text()  # nothing from the network
    shot = tmp_path / "report.png"
    _browse(page.as_uri(), shot)
    assert shot.stat().st_size > 10_000
