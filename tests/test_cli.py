"""The command line: the toy third-party plugin end to end, and every bad input's message."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from conftest import install_fake_distribution
from mlflow.tracking import MlflowClient

from disentangle.cli import main
from disentangle.registry import get_registry

TOY_RUN = ["run", "toy_autoencoder", "--dataset", "toy_blobs", "--steps", "30", "--no-progress",
           "--metrics", ""]


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return captured.err


def test_toy_plugin_is_listed_with_its_distribution(with_toy, capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "toy_autoencoder" in out and "toy_blobs" in out
    line = next(x for x in out.splitlines() if "toy_autoencoder" in x)
    assert "toy_plugin 1.0" in line and "linear autoencoder" in line
    assert "infogan" in out  # first-party plugins load through the same group


def test_toy_plugin_runs_through_the_cli_and_is_logged(with_toy, capsys):
    assert main(TOY_RUN) == 0
    out = capsys.readouterr().out
    assert "finished at step 30" in out
    assert "mlflow ui --backend-store-uri 'sqlite:///" in out
    client = MlflowClient(f"sqlite:///{Path('mlflow.db').resolve()}")
    run = client.search_runs([client.get_experiment_by_name("toy_blobs").experiment_id])[0]
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "toy_autoencoder-toy_blobs-0"
    assert run.data.params["model"] == "toy_autoencoder"
    assert run.data.params["model.latents"] == "3"
    assert run.data.tags["model.distribution"] == "toy_plugin 1.0"
    history = client.get_metric_history(run.info.run_id, "train/reconstruction")
    assert [m.step for m in history][-1] == 30
    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    for name in ("samples.png", "config.yaml", "scores.json", "checkpoints/last.pt"):
        assert (artifacts / name).is_file(), name
    assert json.loads((artifacts / "scores.json").read_text())["step"] == 30
    state = torch.load(artifacts / "checkpoints/last.pt", weights_only=True)
    assert state["step"] == 30


def test_a_third_party_gan_on_the_template_trains_scores_and_logs(with_toy, capsys):
    assert main(["run", "toy_gan", "--dataset", "toy_blobs", "--steps", "12", "--no-progress",
                 "--metrics", "mig", "--set", "d_channels=8,16", "--set", "fc_dim=32",
                 "--set", "inverse_steps=20"]) == 0
    assert "finished at step 12" in capsys.readouterr().out
    client = MlflowClient(f"sqlite:///{Path('mlflow.db').resolve()}")
    run = client.search_runs([client.get_experiment_by_name("toy_blobs").experiment_id])[0]
    assert run.info.status == "FINISHED" and run.data.params["model.arch"] == "digits"
    assert {"eval/mig", "eval/inverse_encoder.mse", "train/d_loss", "train/g_loss"} <= set(
        run.data.metrics)
    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    assert (artifacts / "samples.png").is_file() and (artifacts / "checkpoints/last.pt").is_file()


def test_first_party_names_win_and_any_plugin_fault_is_that_plugins(tmp_path, monkeypatch,
                                                                    workdir, capsys):
    site = tmp_path / "early_site"
    site.mkdir()
    (site / "aaa_takeover.py").write_text(
        "import disentangle\nfrom disentangle_plugins.models.vae import VAE\n\n"
        "class Impostor(VAE):\n    name = 'infogan'\n\n"
        "@disentangle.hookimpl\ndef disentangle_register_models():\n    return [Impostor]\n")
    (site / "aaa_exits.py").write_text("raise SystemExit(3)\n")
    install_fake_distribution(site, "aaa_plugins", None, {
        "aaa_takeover": "aaa_takeover", "aaa_exits": "aaa_exits"})
    monkeypatch.syspath_prepend(str(site))
    get_registry.cache_clear()
    try:
        assert get_registry().get("model", "infogan").distribution.startswith(
            "disentangle-bench ")
        assert main(["list"]) == 0
        out = capsys.readouterr().out
        assert ("plugin 'aaa_takeover' (aaa_plugins 1.0) failed during "
                "disentangle_register_models(): model 'infogan' is already provided by plugin "
                "'infogan'") in out
        assert "plugin 'aaa_exits' (aaa_plugins 1.0) failed during import: SystemExit: 3" in out
    finally:
        get_registry.cache_clear()


def test_show_lists_hyper_parameters(with_toy, capsys):
    assert main(["show", "infogan", "--dataset", "toy_blobs"]) == 0
    out = capsys.readouterr().out
    assert "lambda_continuous" in out and "Adam learning rate of G" in out
    # the dataset-specific default: one categorical code per categorical factor
    line = next(x for x in out.splitlines() if "categorical_sizes" in x)
    assert re.split(r"\s{2,}", line.strip())[1:3] == ["tuple[int,...] | None", "3"]
    # options the dataset's arch preset fills in are shown with the preset's value
    line = next(x for x in out.splitlines() if x.split()[0] == "arch")
    assert re.split(r"\s{2,}", line.strip())[2] == "digits"


@pytest.mark.parametrize("argv, expected", [
    (["run", "nosuchmodel", "--dataset", "toy_blobs"],
     "unknown model 'nosuchmodel'; available: acgan, annealed_vae, beta_tcvae, beta_vae, "
     "cgan, dip_vae_i, dip_vae_ii, factor_vae, gan, infogan, infogan_cr, projection_cgan, "
     "toy_autoencoder"),
    (["run", "toy_autoencoder", "--dataset", "nosuchdata"], "unknown dataset 'nosuchdata'; "),
    (["run", "toy_autoencoder", "--dataset", "toy_blobs", "--metrics", "nosuchmetric"],
     "unknown metric 'nosuchmetric'"),
    (["run", "toy_autoencoder", "--dataset", "toy_blobs", "--set", "width=3"],
     "unknown toy_autoencoder parameter 'width'; valid parameters: latents, lr"),
    (["run", "toy_autoencoder", "--dataset", "toy_blobs", "--set", "lr=fast"],
     "bad value 'fast' for toy_autoencoder parameter 'lr' (type float)"),
    (["run", "toy_autoencoder", "--dataset", "toy_blobs", "--set", "latents"],
     "--set expects key=value, got 'latents'"),
    (["run", "infogan", "--dataset", "toy_blobs", "--set", "categorical_sizes=1"],
     "invalid infogan parameters: each categorical code needs at least 2 classes"),
    (["run", "toy_autoencoder", "--dataset", "toy_blobs", "--resume", "0123abcd"],
     "no run with id '0123abcd'"),
    (["run", "toy_autoencoder", "--dataset", "toy_blobs", "--tracking-uri",
      "http://127.0.0.1:9"], "cannot reach the MLflow tracking server at 'http://127.0.0.1:9'"),
    (["show", "nosuchmodel"], "unknown model, metric or dataset 'nosuchmodel'"),
    (["data", "fetch", "toy_blobs"], "dataset 'toy_blobs' has no files to download"),
])
def test_bad_input_gets_a_clear_message(with_toy, capsys, argv, expected):
    assert expected in _error(capsys, argv)
    assert not Path("mlruns").exists()  # nothing was trained or logged


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda(with_toy, capsys):
    err = _error(capsys, TOY_RUN + ["--device", "cuda"])
    assert "--device cuda: CUDA is not available here" in err


def test_broken_plugins_are_named_and_others_keep_working(with_toy, tmp_path, monkeypatch,
                                                          capsys):
    broken = tmp_path / "broken_site"
    (broken).mkdir()
    (broken / "raises_on_import.py").write_text("raise RuntimeError('boom at import')\n")
    (broken / "raises_on_register.py").write_text(
        "import disentangle\n\n@disentangle.hookimpl\n"
        "def disentangle_register_models():\n    raise ValueError('boom at registration')\n")
    install_fake_distribution(broken, "broken_plugin", None, {
        "missing": "no_such_module_here", "bad_import": "raises_on_import",
        "bad_register": "raises_on_register"})
    monkeypatch.syspath_prepend(str(broken))
    get_registry.cache_clear()
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "plugin 'missing' (broken_plugin 1.0) failed during import: ModuleNotFoundError" in out
    assert "plugin 'bad_import' (broken_plugin 1.0) failed during import: RuntimeError: " \
           "boom at import" in out
    assert "plugin 'bad_register' (broken_plugin 1.0) failed during " \
           "disentangle_register_models(): ValueError: boom at registration" in out
    assert main(TOY_RUN) == 0
    assert "warning: plugin 'bad_import'" in capsys.readouterr().err


def test_evaluate_scores_a_logged_run_and_logs_to_it(with_toy, capsys):
    assert main(TOY_RUN) == 0
    client = MlflowClient(f"sqlite:///{Path('mlflow.db').resolve()}")
    run = client.search_runs([client.get_experiment_by_name("toy_blobs").experiment_id])[0]
    assert "eval/mig" not in run.data.metrics
    capsys.readouterr()
    assert main(["evaluate", run.info.run_id, "--metrics", "mig,categorical_accuracy"]) == 0
    out = capsys.readouterr().out
    assert "categorical_accuracy skipped: " in out  # the toy model has no categorical code
    history = client.get_metric_history(run.info.run_id, "eval/mig")
    assert [m.step for m in history] == [30] and 0 <= history[0].value <= 1
    assert main(["evaluate", "feedbeef"]) == 2
    assert "no run with id 'feedbeef'" in capsys.readouterr().err


SUITE = ("factor_vae,beta_vae,dci,dci_fast,sap,modularity,irs,gaussian_total_correlation,"
         "gaussian_wasserstein_correlation,pairwise_mutual_info,mig_sup,dcimig,jemmig,z_min,"
         "z_max,infomec,dci_es")
SMALL_SUITE = ["dci.num_train=200", "dci.num_test=100", "dci_fast.num_train=200",
               "dci_fast.num_test=100", "sap.num_train=500", "modularity.num_train=500",
               "beta_vae.num_train=500", "infomec.num_points=2000", "dci_es.num_train=200",
               "dci_es.num_test=100", "dci_es.trees=5"]


def test_every_metric_is_listed_and_evaluate_computes_the_suite(with_toy, capsys):
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    for name in SUITE.split(",") + ["mig", "categorical_accuracy"]:
        assert f"  {name} " in listed
    assert main(TOY_RUN) == 0
    client = MlflowClient(f"sqlite:///{Path('mlflow.db').resolve()}")
    run = client.search_runs([client.get_experiment_by_name("toy_blobs").experiment_id])[0]
    params = [arg for p in SMALL_SUITE for arg in ("--param", p)]
    capsys.readouterr()
    assert main(["evaluate", run.info.run_id, "--metrics", SUITE, *params]) == 0
    out = capsys.readouterr().out
    assert "147 images encoded" in out and "(whole factor grid)" in out
    logged = client.get_run(run.info.run_id).data.metrics
    for name in SUITE.split(","):
        assert f"eval/{name}" in logged, name
    assert main(["evaluate", run.info.run_id, "--metrics", "dci", "--param", "dci.n=3"]) == 2
    assert "metric 'dci' has no parameter 'n'" in capsys.readouterr().err
