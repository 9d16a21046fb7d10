"""InfoGAN: code sampling, the information losses on known inputs, shapes, the shared trunk."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from disentangle import config as cfg
from disentangle_plugins.models.infogan import ARCHITECTURES, InfoGAN, InfoGANConfig

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class _Blobs:
    """Just what InfoGAN reads from a dataset: image shape and categorical factors."""

    image_shape = (1, 16, 16)
    factor_names = ("kind", "x")
    factor_sizes = (4, 7)
    categorical_factors = ("kind",)


class _Unlabelled:
    """A dataset of a given image size without categorical factors."""

    factor_names = ("x",)
    factor_sizes = (5,)
    categorical_factors = ()

    def __init__(self, size: int):
        self.image_shape = (1, size, size)


def _model(dataset=None, **overrides) -> InfoGAN:
    dataset = dataset or _Blobs()
    params = {"d_channels": (8, 16), "fc_dim": 32, "q_dim": 16, "noise_dim": 4,
              **InfoGAN.dataset_defaults(dataset), **overrides}
    torch.manual_seed(0)
    return InfoGAN(cfg.instantiate(InfoGANConfig, params, "infogan"), dataset, "cpu")


def test_dataset_defaults_give_one_code_per_categorical_factor():
    assert InfoGAN.dataset_defaults(_Blobs()) == {"arch": "digits", "categorical_sizes": (4,)}


def test_the_dsprites_preset_adds_no_categorical_code_as_in_infogan_cr():
    shapes = _Blobs()
    shapes.image_shape = (1, 64, 64)
    assert InfoGAN.dataset_defaults(shapes) == {"arch": "dsprites"}
    config = cfg.instantiate(InfoGANConfig, InfoGAN.dataset_defaults(shapes), "infogan")
    assert (config.categorical_sizes, config.continuous_dim, config.noise_dim) == ((), 5, 5)


@pytest.mark.parametrize("size, arch", [(8, "digits"), (16, "digits"), (28, "mnist"),
                                        (32, "dsprites"), (64, "dsprites")])
def test_the_image_size_picks_the_arch(size, arch):
    assert InfoGAN.dataset_defaults(_Unlabelled(size)) == {"arch": arch}


def test_the_preset_fills_only_unset_options():
    mnist = cfg.instantiate(InfoGANConfig, {"arch": "mnist"}, "infogan")
    assert (mnist.noise_dim, mnist.categorical_sizes, mnist.continuous_dim) == (62, (10,), 2)
    assert (mnist.lr_d, mnist.lr_g, mnist.lr_q, mnist.lambda_continuous) == (2e-4, 1e-3, 1e-3, 1)
    assert (mnist.d_channels, mnist.fc_dim, mnist.q_dim) == ((64, 128), 1024, 128)
    own = cfg.instantiate(InfoGANConfig, {"arch": "mnist", "noise_dim": 7,
                                      "categorical_sizes": ()}, "infogan")
    assert (own.noise_dim, own.categorical_sizes, own.fc_dim) == (7, (), 1024)
    dsprites = cfg.instantiate(InfoGANConfig, {"arch": "dsprites"}, "infogan")
    assert (dsprites.noise_dim, dsprites.continuous_dim, dsprites.g_steps) == (5, 5, 2)
    assert all(set(preset) == set(ARCHITECTURES["mnist"]) for preset in ARCHITECTURES.values())


def test_mnist_architecture_matches_the_paper():
    model = _model(_Unlabelled(28), d_channels=None, fc_dim=None, q_dim=None, noise_dim=None)
    assert model.config.arch == "mnist" and model.latent_dim == 62 + 10 + 2
    g, d = model.generator, model.discriminator
    assert [m.out_features for m in g.fc if isinstance(m, torch.nn.Linear)] == [1024, 7 * 7 * 128]
    assert [m.out_channels for m in g.deconv if isinstance(m, torch.nn.ConvTranspose2d)] == [64, 1]
    assert [m.out_channels for m in d.trunk if isinstance(m, torch.nn.Conv2d)] == [64, 128]
    # batch norm after every D layer but the first conv, and in Q's head
    assert [type(m).__name__ for m in d.trunk if "Norm" in type(m).__name__] == [
        "BatchNorm2d", "BatchNorm1d"]
    assert [m.out_features for m in d.aux_head if isinstance(m, torch.nn.Linear)] == [128, 10 + 2]
    latent = model.latent_vector(model.sample_latent(3))
    assert g.fc(latent).shape == (3, 7 * 7 * 128)
    images = g(latent)
    assert images.shape == (3, 1, 28, 28) and images.min() >= 0 and images.max() <= 1
    features = d.trunk(images)
    assert features.shape == (3, 1024)
    real_fake, q = d(images)
    assert real_fake.shape == (3,) and q.shape == (3, 12)


def test_latent_sampling_shapes_and_ranges():
    model = _model(categorical_sizes=(4, 3), continuous_dim=2, noise_dim=6)
    drawn = model.sample_latent(500, torch.Generator().manual_seed(1))
    noise, classes, cont = drawn.noise, drawn.classes, drawn.continuous
    assert noise.shape == (500, 6) and classes.shape == (500, 2) and cont.shape == (500, 2)
    assert noise.abs().max() <= 1 and cont.abs().max() <= 1 and cont.min() < -0.9
    assert set(classes[:, 0].tolist()) == {0, 1, 2, 3} and set(classes[:, 1].tolist()) == {0, 1, 2}
    latent = model.latent_vector(drawn)
    assert latent.shape == (500, 6 + 4 + 3 + 2)
    assert torch.equal(latent[:, 6:10].argmax(1), classes[:, 0])


def test_information_losses_on_known_inputs():
    model = _model(categorical_sizes=(4,), continuous_dim=2)
    classes = torch.tensor([[0], [3]])
    cont = torch.tensor([[0.5, -0.5], [0.1, 0.9]])
    uniform = torch.cat([torch.zeros(2, 4), cont], 1)  # uniform logits, exact means
    cat, cont_loss = model.information_losses(uniform, classes, cont)
    assert cat.item() == pytest.approx(math.log(4))  # bound H(c) - CE = 0
    # Gaussian NLL at the mean with unit variance, summed over the two codes
    assert cont_loss.item() == pytest.approx(2 * HALF_LOG_2PI)
    confident = torch.cat([torch.nn.functional.one_hot(classes[:, 0], 4) * 50.0, cont + 1], 1)
    cat, cont_loss = model.information_losses(confident, classes, cont)
    assert cat.item() == pytest.approx(0.0, abs=1e-6)  # a perfect prediction
    assert cont_loss.item() == pytest.approx(2 * (0.5 + HALF_LOG_2PI))  # one unit off per code


def test_learned_variance_enters_the_likelihood():
    model = _model(categorical_sizes=(), continuous_dim=1, learn_variance=True)
    q = torch.tensor([[0.0, math.log(4.0)]])  # mean 0, variance 4
    _, loss = model.information_losses(q, torch.zeros(1, 0, dtype=torch.long),
                                       torch.tensor([[2.0]]))
    assert loss.item() == pytest.approx(0.5 * 4 / 4 + 0.5 * math.log(4) + HALF_LOG_2PI)


def test_information_loss_trains_the_shared_trunk():
    model = _model()
    drawn = model.sample_latent(8)
    _, q = model.discriminator(model.generator(model.latent_vector(drawn)))
    sum(model.information_losses(q, drawn.classes, drawn.continuous)).backward()
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
    # a row per class of the categorical code, as in the paper's figures
    assert pictures["continuous_2"].shape == (4, 5, 1, 16, 16)


def test_class_probabilities_are_q_softmax_per_categorical_code():
    model = _model(categorical_sizes=(4, 3))
    model.eval()
    images = torch.rand(6, 1, 16, 16)
    probabilities = model.class_probabilities(images)
    assert [p.shape for p in probabilities] == [(6, 4), (6, 3)]
    assert all(np.allclose(p.sum(axis=1), 1.0) for p in probabilities)
    chosen = np.stack([p.argmax(axis=1) for p in probabilities], axis=1)
    assert np.array_equal(chosen, model.encode(images).categorical)
    assert _model(categorical_sizes=()).class_probabilities(images) == []


def test_continuous_traversals_hold_the_other_codes_fixed():
    model = _model(continuous_dim=2).eval()
    pictures = model.traversals(torch.Generator().manual_seed(0), steps=5)
    first, second = pictures["continuous_0"], pictures["continuous_1"]
    # the middle column sets the swept code to 0 like the others: the same images
    assert torch.equal(first[:, 2], second[:, 2])
    assert not torch.equal(first[:, 0], second[:, 0])
    assert not torch.equal(first[0, 2], first[1, 2])  # rows differ in the class only
    unlabelled = _model(_Unlabelled(16), categorical_sizes=(), continuous_dim=1).eval()
    rows = unlabelled.traversals(torch.Generator().manual_seed(0), rows=3)["continuous_0"]
    assert rows.shape[0] == 3 and not torch.equal(rows[0], rows[1])  # own noise per row


def test_training_raises_the_categorical_information_bound():
    model = _model(lr_d=2e-3, lr_g=2e-3)
    images = torch.rand(32, 1, 16, 16).round()
    bounds = [model.train_step(images, np.zeros((32, 2)), step)["mi_bound_categorical"]
              for step in range(60)]
    assert np.mean(bounds[-5:]) > np.mean(bounds[:5]) + 0.3


def test_image_size_must_fit_the_layers():
    with pytest.raises(ValueError, match="not divisible by 2\\^5"):
        _model(d_channels=(8, 8, 8, 8, 8))


def test_the_code_head_learns_at_its_own_rate_and_d_at_lr_d():
    model = _model(lr_d=1e-4, lr_q=3e-3)
    trunk, head = model.opt_d.param_groups
    assert (trunk["lr"], head["lr"]) == (1e-4, 3e-3)
    assert {id(p) for p in head["params"]} == {
        id(p) for p in model.discriminator.aux_head.parameters()}


@pytest.mark.parametrize("learn_variance", [False, True])
def test_logged_information_bounds(learn_variance):
    model = _model(continuous_dim=2, learn_variance=learn_variance)
    losses = model.train_step(torch.rand(8, 1, 16, 16), np.zeros((8, 2)), 0)
    assert losses["mi_bound_categorical"] == pytest.approx(
        math.log(4) - losses["info_categorical"])
    # with a fixed unit variance the continuous bound is always negative: not logged
    assert ("mi_bound_continuous" in losses) == learn_variance
    if learn_variance:
        assert losses["mi_bound_continuous"] == pytest.approx(
            2 * math.log(2) - losses["info_continuous"])


def test_checkpoints_that_call_the_code_head_q_head_still_load():
    trained = _model()
    state = trained.checkpoint_state()
    state["modules"] = {k.replace("aux_head.", "q_head."): v for k, v in state["modules"].items()}
    torch.manual_seed(1)
    fresh = InfoGAN(trained.config, _Blobs(), "cpu")
    fresh.load_checkpoint_state(state)
    for (name, a), b in zip(trained.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), name
