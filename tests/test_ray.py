"""A suite on a local Ray cluster (2 workers) logging to an MLflow server on loopback."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from disentangle.cli import main

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'disentangle[ray]')")

SUITE = """
name: cluster
datasets: [toy_blobs]
seeds: [0, 1]
steps: 10
metrics: [mig]
runs:
  - model: toy_autoencoder
    grid: {lr: [0.01, 0.001]}
"""


@pytest.fixture
def tracking_server(workdir: Path, http_service):
    """``mlflow server`` with a SQLite backend and a served artifact root, on loopback."""
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
               "--backend-store-uri", f"sqlite:///{workdir / 'server.db'}",
               "--artifacts-destination", str(workdir / "artifacts"), "--workers", "1"]
    with http_service(lambda port: [*command, "--port", str(port)],
                      "the MLflow server") as url:
        yield url


def test_a_suite_runs_on_two_ray_workers_into_one_shared_store(with_toy, toy_site, monkeypatch,
                                                               tracking_server, capsys):
    monkeypatch.setenv("PYTHONPATH", str(toy_site))  # Ray's workers find the toy plugin
    Path("cluster.yaml").write_text(SUITE)
    started = time.monotonic()
    try:
        code = main(["bench", "cluster.yaml", "--executor", "ray", "--tracking-uri",
                     tracking_server, "--no-progress"])
    finally:
        ray.shutdown()
    seconds = time.monotonic() - started
    out = capsys.readouterr().out
    assert code == 0, out
    assert "suite cluster: 4 started" in out

    client = MlflowClient(tracking_server)
    experiment = client.get_experiment_by_name("suite-cluster")
    runs = [r for r in client.search_runs([experiment.experiment_id])
            if r.data.tags.get("disentangle.suite.key") != "parent"]
    assert len(runs) == 4
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert all(0 <= r.data.metrics["eval/mig"] <= 1 for r in runs)
    assert len({r.data.tags["host.pid"] for r in runs}) >= 2  # more than one worker trained
    # checkpoints went to the server's artifact store, so any worker can resume a run
    assert all("checkpoints" in [a.path for a in client.list_artifacts(r.info.run_id)]
               for r in runs)
    print(f"\n4 runs on Ray in {seconds:.0f} s: " + ", ".join(
        f"{r.info.run_name} lr={r.data.params['model.lr']} mig={r.data.metrics['eval/mig']:.3f}"
        for r in sorted(runs, key=lambda r: r.info.run_name)))
