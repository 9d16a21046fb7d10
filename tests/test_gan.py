"""The plain GAN and the inverse-encoder protocol that scores generators without an encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from disentangle import config as cfg
from disentangle.errors import UsageError
from disentangle_plugins.models.gan import ARCHITECTURES, GAN
from disentangle_plugins.models.inverse import InverseEncoder

TINY = {"d_channels": (8, 16), "fc_dim": 32, "noise_dim": 3, "inverse_steps": 20}


class _Blobs:
    image_shape = (1, 16, 16)


def _gan(**overrides) -> GAN:
    torch.manual_seed(0)
    return GAN(cfg.instantiate(GAN.Config, {**TINY, **overrides}, "gan"), _Blobs(), "cpu")


def _linear_generator(seed: int = 0):
    """A known generator: two latents mix two fixed random patterns (then a sigmoid)."""
    patterns = torch.randn(2, 256, generator=torch.Generator().manual_seed(seed)) * 2

    def sample(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.rand(n, 2, generator=generator) * 2 - 1
        return z, torch.sigmoid(z @ patterns).view(n, 1, 16, 16)

    return sample


def test_inverse_encoder_recovers_the_latents_of_a_known_generator():
    encoder = InverseEncoder((1, 16, 16), 2, (8,))
    mse = encoder.fit(_linear_generator(), steps=80, batch_size=64, lr=3e-3, seed=0)
    assert mse < 0.01  # the prior's variance, what predicting 0 scores, is 1/3
    z, images = _linear_generator()(500, torch.Generator().manual_seed(99))
    with torch.no_grad():
        held_out = ((encoder(images) - z) ** 2).mean().item()
    assert held_out < 0.01


def test_inverse_fit_depends_on_the_seed_alone_and_spares_the_global_rng():
    a = InverseEncoder((1, 16, 16), 2, (8,))
    b = InverseEncoder((1, 16, 16), 2, (8,))
    torch.manual_seed(5)
    b.fit(_linear_generator(), 3, 64, 1e-3, seed=1)  # history
    torch.manual_seed(123)
    a.fit(_linear_generator(), 5, 64, 1e-3, seed=7)
    after = torch.rand(1)
    b.fit(_linear_generator(), 5, 64, 1e-3, seed=7)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    torch.manual_seed(123)
    assert torch.equal(after, torch.rand(1))


def test_inverse_options_are_validated():
    with pytest.raises(UsageError, match="inverse_steps"):
        cfg.instantiate(GAN.Config, {"inverse_steps": 0}, "gan")
    with pytest.raises(UsageError, match="noise_dim"):
        cfg.instantiate(GAN.Config, {"noise_dim": -1}, "gan")  # the GAN part is checked too
    with pytest.raises(ValueError, match="not resolved: build the config with"):
        GAN.Config(arch="mnist")  # presets are filled by instantiate, never in place


def test_gan_scores_through_its_inverse_encoder():
    model = _gan()
    assert model.discriminator.aux_head is None
    diagnostics = model.prepare_evaluation(seed=0)
    assert set(diagnostics) == {"inverse_encoder.mse"} and diagnostics["inverse_encoder.mse"] > 0
    images = torch.rand(5, 1, 16, 16)
    rep = model.encode(images)
    assert rep.continuous.shape == (5, 3) and rep.categorical.shape == (5, 0)
    with torch.no_grad():
        np.testing.assert_allclose(rep.continuous, model.inverse(images).double().numpy(),
                                   rtol=1e-6)
    g = torch.Generator().manual_seed(0)
    assert model.generate(4, g).shape == (4, 1, 16, 16)
    pictures = model.traversals(g, rows=2, steps=5)
    assert sorted(pictures) == ["noise_0", "noise_1", "noise_2"]
    assert pictures["noise_0"].shape == (2, 5, 1, 16, 16)


def test_short_training_lowers_the_discriminator_loss(blob_batch):
    model = _gan()
    losses = [model.train_step(blob_batch, np.zeros((32, 1)), step)["d_loss"] for step in range(40)]
    assert losses[0] == pytest.approx(2 * np.log(2), abs=0.05)  # D starts at chance
    assert np.mean(losses[-3:]) < 0.5 * losses[0]


def test_gan_shares_infogans_arch_presets():
    class Mnist:
        image_shape = (1, 28, 28)

    assert GAN.dataset_defaults(Mnist()) == {"arch": "mnist"}
    assert GAN.dataset_defaults(_Blobs()) == {"arch": "digits"}
    mnist = cfg.instantiate(GAN.Config, {"arch": "mnist"}, "gan")
    assert {key: getattr(mnist, key) for key in ARCHITECTURES["mnist"]} == ARCHITECTURES["mnist"]
    torch.manual_seed(0)
    model = GAN(cfg.instantiate(GAN.Config, {"arch": "digits", "inverse_steps": 1}, "gan"),
                _Blobs(), "cpu")
    d = model.discriminator
    assert [m.out_channels for m in d.trunk if isinstance(m, torch.nn.Conv2d)] == [64, 128]
    assert [type(m).__name__ for m in d.trunk if "Norm" in type(m).__name__] == [
        "BatchNorm2d", "BatchNorm1d"]
    assert model.generator(torch.rand(3, model.config.noise_dim)).shape == (3, 1, 16, 16)
    # the dSprites preset: spectral norm, no batch norm in D, two G updates per D update
    dsprites = cfg.instantiate(GAN.Config, {"arch": "dsprites"}, "gan")
    assert (dsprites.spectral_norm, dsprites.batchnorm, dsprites.g_steps) == (True, False, 2)
    # a set option wins
    assert cfg.instantiate(GAN.Config, {"arch": "dsprites", "g_steps": 1}, "gan").g_steps == 1
    assert ARCHITECTURES["digits"] is ARCHITECTURES["mnist"]  # one preset, two names
