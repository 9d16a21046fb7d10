"""Training-step modes: mixed precision, channels-last weights and compiled networks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from disentangle.cli import main
from disentangle.config import RunConfig
from disentangle.errors import UsageError
from disentangle.loop import seed_step
from disentangle.plan import plan_new
from disentangle.precision import autocast, check_precision
from disentangle.registry import get_registry
from disentangle.run import build_model

TINY_VAE = {"channels": "8,8", "dense_dim": "16", "latent_dim": "3"}


def _model(precision: str = "fp32", model: str = "vae", **settings):
    registry = get_registry()
    plan = plan_new(RunConfig(model=model, dataset="toy_blobs", device="cpu",
                              precision=precision, **settings), dict(TINY_VAE), registry)
    return plan, build_model(plan, torch.device("cpu"))


def _losses(plan, model, steps: int) -> list[dict[str, float]]:
    out = []
    for step in range(steps):
        images, factors = plan.dataset.sample(16, seed_step(0, step))
        with autocast(plan.settings.precision, model.device):
            losses = model.train_step(images, factors, step)
        out.append({k: float(v) for k, v in losses.items()})
    return out


def test_bf16_trains_on_the_cpu_close_to_fp32(with_toy):
    plan32, fp32 = _model("fp32")
    plan16, bf16 = _model("bf16")
    a, b = _losses(plan32, fp32, 5), _losses(plan16, bf16, 5)
    for x, y in zip(a, b):
        assert all(np.isfinite(list(y.values())))
        assert abs(y["reconstruction"] - x["reconstruction"]) < 0.02 * abs(x["reconstruction"])
    assert a != b  # the step really ran in bf16
    assert all(p.dtype == torch.float32 for p in bf16.parameters())


def test_a_bf16_run_is_recorded_and_fp16_is_refused_on_the_cpu(with_toy, capsys):
    argv = ["run", "vae", "--dataset", "toy_blobs", "--steps", "3", "--metrics", "",
            "--no-progress", *[f"--set={k}={v}" for k, v in TINY_VAE.items()]]
    assert main([*argv, "--precision", "bf16"]) == 0
    assert "in bf16 mixed precision" in capsys.readouterr().out
    client = MlflowClient(f"sqlite:///{Path('mlflow.db').resolve()}")
    run = client.search_runs([client.get_experiment_by_name("toy_blobs").experiment_id])[0]
    assert run.data.params["precision"] == "bf16"
    assert main([*argv, "--precision", "fp16"]) == 2
    err = capsys.readouterr().err
    assert "fp16 needs a CUDA device" in err and "use --precision bf16" in err
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):
        main([*argv, "--precision", "fp8"])
    assert "invalid choice: 'fp8'" in capsys.readouterr().err


def test_precision_support_per_device():
    check_precision("fp32", torch.device("mps"))
    check_precision("bf16", torch.device("cpu"))
    with pytest.raises(UsageError, match="not on mps"):
        check_precision("bf16", torch.device("mps"))


def test_fp16_loss_scaling_skips_overflowing_steps_and_is_checkpointed(with_toy):
    """The scaler path on the CPU (CPU runs refuse fp16, but the arithmetic is the same)."""
    plan, model = _model()
    model.set_precision("fp16")
    assert set(model.scalers) == set(model.optimizers())
    scaler = model.scalers["vae"]
    before = [p.detach().clone() for p in model.parameters()]
    first = next(model.parameters())
    model.optimize(model.opt, first.sum() * float("inf"))  # gradients overflow
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters()))
    assert scaler.get_scale() == 2.0 ** 16 * 0.5
    model.optimize(model.opt, first.square().sum())
    assert not torch.equal(before[0], first)
    state = model.checkpoint_state()
    _, fresh = _model()
    fresh.set_precision("fp16")
    fresh.load_checkpoint_state(state)
    assert fresh.scalers["vae"].get_scale() == scaler.get_scale()
    _, fp32 = _model()
    assert "scalers" not in fp32.checkpoint_state()


def test_channels_last_weights_give_the_same_losses(with_toy, monkeypatch):
    from disentangle_plugins.models.vae import VAE

    monkeypatch.setattr(VAE, "channels_last", False)
    plan, plain = _model()
    monkeypatch.setattr(VAE, "channels_last", True)
    _, fast = _model()
    def channels_last(model):  # of a convolution with several input channels
        conv = next(m for m in model.modules()
                    if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
        return conv.weight.is_contiguous(memory_format=torch.channels_last)

    assert not channels_last(plain) and channels_last(fast)
    for x, y in zip(_losses(plan, plain, 4), _losses(plan, fast, 4)):
        assert x == pytest.approx(y, rel=1e-5)


def test_compiled_networks_keep_their_weights_and_outputs(with_toy, monkeypatch):
    compiled = []

    def fake_compile(fn):  # dynamo's tracing is exercised by the benchmark, not here
        compiled.append(fn.__self__)
        return fn

    monkeypatch.setattr(torch, "compile", fake_compile)
    plan, plain = _model()
    _, model = _model(compile=True)
    assert {type(m).__name__ for m in compiled} == {"ConvEncoder", "DeconvDecoder"}
    assert list(model.state_dict()) == list(plain.state_dict())
    assert _losses(plan, plain, 2) == _losses(plan, model, 2)
