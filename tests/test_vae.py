"""The VAE family: losses against hand-computed values, shapes, and short trainings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from disentangle import config as cfg
from disentangle.models import Reconstructs, sweep
from disentangle_plugins.models.annealed_vae import AnnealedVAE, capacity
from disentangle_plugins.models.beta_tcvae import BetaTCVAE, total_correlation
from disentangle_plugins.models.beta_vae import BetaVAE
from disentangle_plugins.models.dip_vae import DIPVAEI, DIPVAEII, covariance, dip_penalty
from disentangle_plugins.models.factor_vae import FactorVAE, permute_dims
from disentangle_plugins.models.vae import VAE, bernoulli_reconstruction, gaussian_kl

ALL = (VAE, BetaVAE, AnnealedVAE, FactorVAE, BetaTCVAE, DIPVAEI, DIPVAEII)
TINY = {"channels": (8, 8), "dense_dim": 32, "latent_dim": 4, "lr": 1e-2}
FACTOR_TINY = {"disc_layers": 2, "disc_units": 32}


class _Blobs:
    """What the models read from a dataset: the image shape."""

    image_shape = (1, 16, 16)


def _model(cls, seed: int = 0, **overrides):
    params = {**TINY, **(FACTOR_TINY if cls is FactorVAE else {}), **overrides}
    torch.manual_seed(seed)
    return cls(cfg.instantiate(cls.Config, params, cls.name), _Blobs(), "cpu")


def test_kl_of_equal_gaussians_is_zero_and_hand_values():
    zeros = torch.zeros(3, 2)
    assert torch.equal(gaussian_kl(zeros, zeros), zeros)
    # KL(N(1, 1) || N(0, 1)) = 1/2; KL(N(0, 2) || N(0, 1)) = (2 - 1 - ln 2) / 2
    kl = gaussian_kl(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(2.0)]]))
    assert kl[0, 0].item() == pytest.approx(0.5)
    assert kl[0, 1].item() == pytest.approx((1 - math.log(2)) / 2)


def test_bernoulli_reconstruction_sums_pixels():
    images = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])
    assert bernoulli_reconstruction(torch.zeros_like(images), images).item() == pytest.approx(
        4 * math.log(2))  # p = 1/2 everywhere
    confident = (images * 2 - 1) * 30
    assert bernoulli_reconstruction(confident, images).item() == pytest.approx(0, abs=1e-10)


def test_total_correlation_independent_near_zero_correlated_larger():
    torch.manual_seed(0)
    m, d = 256, 4
    # every posterior the prior: the aggregate posterior is N(0, I), exactly factorised
    prior = torch.zeros(m, d)
    assert total_correlation(torch.randn(m, d), prior, prior).item() == pytest.approx(0, abs=1e-5)
    # independent means, unit posterior variance: aggregate close to N(0, 2I)
    mean = torch.randn(m, d)
    independent = total_correlation(mean + torch.randn(m, d), mean, torch.zeros(m, d)).item()
    assert abs(independent) < 0.1
    # all latents copy one number: strongly dependent
    mean = torch.randn(m, 1).repeat(1, d) * 2
    log_var = torch.full((m, d), -4.0)
    correlated = total_correlation(mean + 0.1 * torch.randn(m, d), mean, log_var).item()
    assert correlated > 3


def test_dip_penalty_zero_on_identity_and_hand_value():
    assert dip_penalty(torch.eye(5), 10.0, 100.0).item() == 0.0
    cov = torch.tensor([[2.0, 0.5], [0.5, 1.0]])
    # off-diagonal 2 * 0.5^2 = 0.5 (weight 1); diagonal (2 - 1)^2 = 1 (weight 10)
    assert dip_penalty(cov, 1.0, 10.0).item() == pytest.approx(0.5 + 10.0)


def test_covariance_is_the_biased_sample_covariance():
    x = torch.randn(50, 3, dtype=torch.float64)
    np.testing.assert_allclose(covariance(x).numpy(), np.cov(x.numpy().T, bias=True))


def test_dip_ii_adds_the_mean_posterior_variance():
    model = _model(DIPVAEII)
    mean = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    log_var = torch.log(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    expected = torch.tensor([[1.0 + 2.0, 0.0], [0.0, 0.0 + 3.0]])
    assert torch.allclose(model.target_covariance(mean, log_var), expected)
    assert torch.allclose(_model(DIPVAEI).target_covariance(mean, log_var),
                          torch.tensor([[1.0, 0.0], [0.0, 0.0]]))


def test_dip_defaults_follow_the_reference():
    assert DIPVAEI.Config().lambda_d_factor == 10 and DIPVAEII.Config().lambda_d_factor == 1


def test_permute_dims_keeps_marginals_and_breaks_dependence():
    torch.manual_seed(0)
    t = torch.randn(2000, 1)
    z = torch.cat([t, t, -t], 1)
    shuffled = permute_dims(z)
    for j in range(3):
        assert torch.equal(shuffled[:, j].sort().values, z[:, j].sort().values)
    corr = np.corrcoef(shuffled.numpy().T)
    assert np.abs(corr[np.triu_indices(3, 1)]).max() < 0.1


def test_capacity_grows_linearly_then_stays():
    assert capacity(25.0, 0, 100) == 0.0
    assert capacity(25.0, 40, 100) == pytest.approx(10.0)
    assert capacity(25.0, 250, 100) == 25.0


def test_sweep_sets_one_column_to_each_value():
    base = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    out = sweep(base, 1, torch.tensor([-1.0, 0.0, 1.0]))
    assert out.tolist() == [[1, -1], [1, 0], [1, 1], [3, -1], [3, 0], [3, 1]]


def test_encode_is_the_posterior_mean_and_pictures_have_their_shapes():
    model = _model(VAE)
    images = torch.rand(5, 1, 16, 16)
    mean, _ = model.posterior(images)
    rep = model.encode(images)
    assert rep.continuous.shape == (5, 4) and rep.categorical.shape == (5, 0)
    np.testing.assert_allclose(rep.continuous, mean.detach().double().numpy(), rtol=1e-6)
    g = torch.Generator().manual_seed(0)
    samples = model.generate(6, g)
    assert samples.shape == (6, 1, 16, 16) and samples.min() >= 0 and samples.max() <= 1
    pictures = model.traversals(g, rows=2, steps=5)
    assert sorted(pictures) == [f"latent_{j}" for j in range(4)]
    assert pictures["latent_3"].shape == (2, 5, 1, 16, 16)
    # a reconstruction decodes the posterior mean, the code the metrics score
    assert isinstance(model, Reconstructs)
    redrawn = model.reconstruct(images)
    assert redrawn.shape == images.shape
    torch.testing.assert_close(redrawn, model.decode(mean.detach()))


def test_factor_vae_trains_its_discriminator_with_its_own_optimiser():
    model = _model(FactorVAE)
    assert set(model.optimizers()) == {"vae", "discriminator"}
    vae_params = {id(p) for g in model.opt.param_groups for p in g["params"]}
    assert not vae_params & {id(p) for p in model.discriminator.parameters()}
    before = [p.clone() for p in model.discriminator.parameters()]
    losses = model.train_step(torch.rand(16, 1, 16, 16).round(), np.zeros((16, 1)), 0)
    assert {"total_correlation", "discriminator_loss"} <= set(losses)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.discriminator.parameters()))


def test_image_size_must_fit_the_layers():
    with pytest.raises(ValueError, match="not divisible by 2\\^5"):
        _model(VAE, channels=(4, 4, 4, 4, 4))


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.name)
def test_short_training_lowers_the_loss(cls, blob_batch):
    model = _model(cls)
    images = blob_batch
    losses = [model.train_step(images, np.zeros((32, 1)), step)["loss"] for step in range(25)]
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])


def test_checkpoint_state_continues_factor_vae_exactly(blob_batch):
    """Weights and both optimisers are in the checkpoint: 3 + 3 steps equal 6 steps."""
    def steps(model, start, stop):
        for step in range(start, stop):
            torch.manual_seed(step)
            model.train_step(blob_batch, np.zeros((32, 1)), step)

    straight = _model(FactorVAE)
    steps(straight, 0, 6)
    first = _model(FactorVAE)
    steps(first, 0, 3)
    resumed = _model(FactorVAE, seed=42)  # other weights, overwritten by the checkpoint
    resumed.load_checkpoint_state(first.checkpoint_state())
    steps(resumed, 3, 6)
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
