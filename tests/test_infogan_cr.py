"""InfoGAN-CR: pairs that share one code, the contrastive loss, its schedule, and a short run
in which the classifier learns to name the shared code."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from disentangle.cli import main
from disentangle.config import RunConfig, split_assignments
from disentangle.loop import seed_step
from disentangle.plan import plan_new
from disentangle.registry import get_registry
from disentangle.run import build_model
from disentangle_plugins.models.infogan import Codes
from disentangle_plugins.models.infogan_cr import contrastive_loss, pair_latents

TINY = ["d_channels=8,8", "fc_dim=16", "noise_dim=3", "q_dim=8"]


def _model(*overrides: str):
    plan = plan_new(RunConfig(model="infogan_cr", dataset="toy_blobs", device="cpu"),
                    split_assignments([*TINY, *overrides]), get_registry())
    return plan, build_model(plan, torch.device("cpu"))


def test_a_pair_shares_the_noise_and_one_code_and_nothing_else():
    first = Codes(torch.tensor([[0.1], [0.2], [0.3]]), torch.tensor([[1], [0], [2]]),
                  torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]))
    second = Codes(torch.tensor([[-0.1], [-0.2], [-0.3]]), torch.tensor([[0], [0], [1]]),
                   -torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]))
    pair = pair_latents(first, second, torch.tensor([0, 2, 1]))
    assert torch.equal(pair.noise, first.noise)
    assert torch.equal(pair.classes, second.classes)  # categorical codes are not shared
    assert torch.equal(pair.continuous, torch.tensor([[1.0, -2.0, -3.0], [-4.0, -5.0, 6.0],
                                                      [-7.0, 8.0, -9.0]]))
    assert torch.equal(second.continuous[0], -torch.tensor([1.0, 2.0, 3.0]))  # not changed


def test_the_contrastive_loss_is_the_cross_entropy_of_naming_the_shared_code():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    expected = (math.log(1 + 2 * math.exp(-2)) + math.log(3)) / 2
    assert contrastive_loss(logits, torch.tensor([0, 2])).item() == pytest.approx(expected)


def test_gs_contrastive_term_switches_on_at_cr_start(with_toy, monkeypatch):
    _, model = _model("cr_start=5", "alpha=2.0")
    monkeypatch.setattr(model, "pair_loss",
                        lambda n, train_generator: (torch.tensor(0.75), torch.tensor(0.5)))
    assert model.generator_regularizer(8, 4).item() == 0.0
    assert model.generator_regularizer(8, 5).item() == pytest.approx(1.5)


def test_the_classifier_starts_afresh_when_gs_term_switches_on(with_toy):
    plan, model = _model("cr_start=3")
    s = plan.settings
    for step in range(4):
        images, factors = plan.dataset.sample(16, seed_step(s.seed, step), model.device)
        model.train_step(images, factors, step)
        steps = {int(state["step"]) for state in model.opt_cr.state.values()}
        assert steps == {step + 1 if step < 3 else 1}


def test_a_short_run_of_cr_updates_lowers_the_contrastive_loss(with_toy):
    """CR's own update, run on pairs from a generator whose codes visibly change its images
    (a fixed random map) with continuous codes only, as in the reference: CR learns which
    code a pair shares. (An untrained GAN's codes barely change its images yet, which is
    why the paper switches G's term on late; on one, the loss stays at chance.)"""
    _, model = _model("cr_start=0", "categorical_sizes=")
    torch.manual_seed(0)
    latent_dim = model.generator.fc[0].in_features
    model.generator = torch.nn.Sequential(torch.nn.Linear(latent_dim, 16 * 16),
                                          torch.nn.Sigmoid(), torch.nn.Unflatten(1, (1, 16, 16)))
    torch.nn.init.normal_(model.generator[0].weight, 0.0, 1.0)
    losses = []
    for _ in range(300):
        loss, _ = model.pair_loss(32, train_generator=False)
        model.optimize(model.opt_cr, loss)
        losses.append(loss.item())
    assert np.mean(losses[:20]) == pytest.approx(math.log(2), abs=0.02)  # two codes: chance
    assert np.mean(losses[-50:]) < 0.6 * math.log(2)


def test_gs_contrastive_term_reaches_the_generator_only_after_cr_start(with_toy):
    _, model = _model("cr_start=1")
    for step, reaches in ((0, False), (1, True)):
        model.generator.zero_grad(set_to_none=True)
        term = model.generator_regularizer(8, step)
        if term.requires_grad:
            term.backward()
        grads = [p.grad for p in model.generator.parameters()]
        assert any(g is not None and g.abs().sum() > 0 for g in grads) == reaches


def test_infogan_cr_needs_two_continuous_codes(with_toy, capsys):
    assert main(["run", "infogan_cr", "--dataset", "toy_blobs", "--set",
                 "continuous_dim=1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "set continuous_dim >= 2" in err and err.count("\n") == 1
