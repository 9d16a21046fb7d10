"""InfoGAN: code sampling, the information losses on known inputs, shapes, the shared trunk."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from disentangle import config as cfg
from disentangle_plugins.models.infogan import InfoGAN, InfoGANConfig


class _Blobs:
    """Just what InfoGAN reads from a dataset: image shape and categorical factors."""

    image_shape = (1, 16, 16)
    factor_names = ("kind", "x")
    factor_sizes = (4, 7)
    categorical_factors = ("kind",)


def _model(**overrides) -> InfoGAN:
    params = {"d_channels": (8, 16), "fc_dim": 32, **InfoGAN.dataset_defaults(_Blobs()),
              **overrides}
    torch.manual_seed(0)
    return InfoGAN(cfg.instantiate(InfoGANConfig, params, "infogan"), _Blobs(), "cpu")


def test_dataset_defaults_give_one_code_per_categorical_factor():
    assert InfoGAN.dataset_defaults(_Blobs()) == {"categorical_sizes": (4,)}


def test_latent_sampling_shapes_and_ranges():
    model = _model(categorical_sizes=(4, 3), continuous_dim=2, noise_dim=6)
    noise, classes, cont = model.sample_latent(500, torch.Generator().manual_seed(1))
    assert noise.shape == (500, 6) and classes.shape == (500, 2) and cont.shape == (500, 2)
    assert noise.abs().max() <= 1 and cont.abs().max() <= 1 and cont.min() < -0.9
    assert set(classes[:, 0].tolist()) == {0, 1, 2, 3} and set(classes[:, 1].tolist()) == {0, 1, 2}
    latent = model.latent_vector(noise, classes, cont)
    assert latent.shape == (500, 6 + 4 + 3 + 2)
    assert torch.equal(latent[:, 6:10].argmax(1), classes[:, 0])


def test_information_losses_on_known_inputs():
    model = _model(categorical_sizes=(4,), continuous_dim=2)
    classes = torch.tensor([[0], [3]])
    cont = torch.tensor([[0.5, -0.5], [0.1, 0.9]])
    uniform = torch.cat([torch.zeros(2, 4), cont], 1)  # uniform logits, exact means
    cat, cont_loss = model.information_losses(uniform, classes, cont)
    assert cat.item() == pytest.approx(math.log(4))  # bound H(c) - CE = 0
    assert cont_loss.item() == pytest.approx(0.0)
    confident = torch.cat([torch.nn.functional.one_hot(classes[:, 0], 4) * 50.0, cont + 1], 1)
    cat, cont_loss = model.information_losses(confident, classes, cont)
    assert cat.item() == pytest.approx(0.0, abs=1e-6)
    assert cont_loss.item() == pytest.approx(0.5 * 2)  # 1/2 squared error, summed over codes


def test_learned_variance_enters_the_likelihood():
    model = _model(categorical_sizes=(), continuous_dim=1, learn_variance=True)
    q = torch.tensor([[0.0, math.log(4.0)]])  # mean 0, variance 4
    _, loss = model.information_losses(q, torch.zeros(1, 0, dtype=torch.long),
                                       torch.tensor([[2.0]]))
    assert loss.item() == pytest.approx(0.5 * 4 / 4 + 0.5 * math.log(4))


def test_information_loss_trains_the_shared_trunk():
    model = _model()
    noise, classes, cont = model.sample_latent(8)
    _, q = model.discriminator(model.generator(model.latent_vector(noise, classes, cont)))
    sum(model.information_losses(q, classes, cont)).backward()
    trunk_grads = [p.grad for p in model.discriminator.trunk.parameters() if p.grad is not None]
    assert trunk_grads and any(g.abs().sum() > 0 for g in trunk_grads)


def test_encode_generate_traverse_shapes():
    model = _model(continuous_dim=3)
    images = torch.rand(5, 1, 16, 16)
    rep = model.encode(images)
    assert rep.continuous.shape == (5, 3) and rep.categorical.shape == (5, 1)
    assert rep.categorical.max() < 4
    g = torch.Generator().manual_seed(0)
    assert model.generate(6, g).shape == (6, 1, 16, 16)
    pictures = model.traversals(g, rows=2, steps=5)
    assert pictures["categorical_0"].shape == (2, 4, 1, 16, 16)
    assert pictures["continuous_2"].shape == (2, 5, 1, 16, 16)


def test_training_raises_the_categorical_information_bound():
    model = _model(lr_d=2e-3, lr_g=2e-3)
    images = torch.rand(32, 1, 16, 16).round()
    bounds = [model.train_step(images, np.zeros((32, 2)), step)["mi_bound_categorical"]
              for step in range(60)]
    assert np.mean(bounds[-5:]) > np.mean(bounds[:5]) + 0.3


def test_image_size_must_fit_the_layers():
    with pytest.raises(ValueError, match="not divisible by 2\\^5"):
        _model(d_channels=(8, 8, 8, 8, 8))
