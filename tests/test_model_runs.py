"""Every first-party model trains, evaluates and logs through the same ``disentangle run``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from disentangle.cli import main

VAE_TINY = ["channels=8,8", "dense_dim=16", "latent_dim=3"]
GAN_TINY = ["d_channels=8,8", "fc_dim=16", "noise_dim=3"]
MODELS = {
    "vae": (VAE_TINY, "loss"),
    "beta_vae": (VAE_TINY, "loss"),
    "annealed_vae": (VAE_TINY + ["capacity_steps=2"], "capacity"),
    "factor_vae": (VAE_TINY + ["disc_layers=1", "disc_units=8"], "discriminator_loss"),
    "beta_tcvae": (VAE_TINY, "total_correlation"),
    "dip_vae_i": (VAE_TINY, "dip_penalty"),
    "dip_vae_ii": (VAE_TINY, "dip_penalty"),
    "gan": (GAN_TINY + ["inverse_steps=3"], "d_loss"),
    "infogan": (GAN_TINY, "mi_bound_categorical"),
    "infogan_cr": (GAN_TINY + ["cr_start=2"], "cr_loss"),
}
GANS = {"gan", "infogan", "infogan_cr"}


def test_list_shows_every_model(with_toy, capsys):
    assert main(["list"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.split("datasets:")[0]
              .splitlines()[1:]}
    assert set(MODELS) <= listed


@pytest.mark.parametrize("model", MODELS)
def test_model_runs_through_the_cli(with_toy, capsys, model):
    overrides, logged = MODELS[model]
    argv = ["run", model, "--dataset", "toy_blobs", "--steps", "4",
            "--metrics", "mig", "--no-progress"]
    for item in overrides:
        argv += ["--set", item]
    assert main(argv) == 0
    assert "finished at step 4" in capsys.readouterr().out
    client = MlflowClient(f"sqlite:///{Path('mlflow.db').resolve()}")
    run = client.search_runs([client.get_experiment_by_name("toy_blobs").experiment_id])[0]
    assert run.info.status == "FINISHED" and run.data.params["model"] == model
    assert f"train/{logged}" in run.data.metrics
    assert 0 <= run.data.metrics["eval/mig"] <= 1
    if model == "gan":
        assert run.data.metrics["eval/inverse_encoder.mse"] > 0
    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    assert (artifacts / "samples.png").is_file()
    assert any((artifacts / "traversals").glob("*.png"))
    # real images above their reconstructions, for the models with a decoder only
    assert (artifacts / "reconstructions.png").is_file() == (model not in GANS)
    # which code holds which factor, at the evaluation; the figure and a GIF per code
    matrix = json.loads((artifacts / "eval" / "4" / "code_factor_mi.json").read_text())
    assert (artifacts / "eval" / "4" / "code_factor_mi.png").is_file()
    assert matrix["factors"] == ["kind", "x", "y"]
    assert sorted(matrix["order"]) == sorted(matrix["codes"])
    assert np.array(matrix["nmi"]).shape == (len(matrix["codes"]), 3)
    swept = [c for c in matrix["codes"] if (artifacts / "traversals" / f"{c}.png").is_file()]
    assert swept, "no traversal picture is named after a code"
    assert all((artifacts / "traversals" / f"{c}.gif").is_file() for c in swept)
    assert (artifacts / "traversals.png").is_file()


@pytest.mark.parametrize("model", [*MODELS, "cgan", "acgan", "projection_cgan"])
def test_a_training_step_never_waits_for_the_device(with_toy, monkeypatch, model):
    """Every first-party model returns its losses as 0-dim tensors (or numbers that are not
    computed on the device, such as a schedule's value) and reads none of them
    back itself (``Tensor.item`` is the read that would wait for an accelerator; torch's own
    CPU-side bookkeeping, such as Adam's step count, may still use it)."""
    import sys

    import numpy as np
    import torch

    from disentangle.config import RunConfig, split_assignments
    from disentangle.plan import plan_new
    from disentangle.registry import get_registry
    from disentangle.run import build_model

    registry = get_registry()
    plan = plan_new(RunConfig(model=model, dataset="toy_blobs", device="cpu"),
                    split_assignments(MODELS.get(model, (GAN_TINY,))[0]), registry)
    built = build_model(plan, torch.device("cpu"))
    images, factors = plan.dataset.sample(8, np.random.default_rng(0))

    item = torch.Tensor.item
    plugins = str(Path(sys.modules[type(built).__module__].__file__).parent)

    def refuse(self):
        if sys._getframe(1).f_code.co_filename.startswith(plugins):
            raise AssertionError("train_step read a tensor back with .item()")
        return item(self)

    monkeypatch.setattr(torch.Tensor, "item", refuse)
    losses = built.train_step(images, factors, 0)
    tensors = [v for v in losses.values() if isinstance(v, torch.Tensor)]
    assert tensors and all(v.dim() == 0 and not v.requires_grad for v in tensors), losses
    assert all(isinstance(v, (torch.Tensor, float)) for v in losses.values()), losses
