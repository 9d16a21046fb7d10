"""The class-conditional GANs (cgan, acgan, projection_cgan) and the conditional-accuracy
metric that scores them and InfoGAN's categorical code."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from disentangle import config as cfg
from disentangle.cli import main
from disentangle.datasets import FactorDataset
from disentangle.errors import NotApplicable
from disentangle.evaluation import Observer
from disentangle.models import ClassConditional
from disentangle_plugins.datasets.digits import Digits
from disentangle_plugins.metrics import conditional
from disentangle_plugins.models.acgan import ACGAN
from disentangle_plugins.models.cgan import CGAN
from disentangle_plugins.models.conditional import ConditionalGAN, Labelled
from disentangle_plugins.models.infogan import InfoGAN
from disentangle_plugins.models.nets import Discriminator
from disentangle_plugins.models.projection_cgan import ProjectionCGAN

GAN_TINY = {"d_channels": (8, 8), "fc_dim": 16, "noise_dim": 3}
TINY = {**GAN_TINY, "inverse_steps": 3}
MODELS = (CGAN, ACGAN, ProjectionCGAN)
#: a classifier budget that learns the quadrants perfectly
JUDGE = {"classifier_images": 300, "classifier_steps": 40, "samples_per_class": 20}


@pytest.fixture(scope="module")
def digits() -> Digits:
    return Digits()


def _build(model_cls: type[ConditionalGAN], dataset, **overrides) -> ConditionalGAN:
    torch.manual_seed(0)
    params = {**model_cls.dataset_defaults(dataset), **TINY, **overrides}
    return model_cls(cfg.instantiate(model_cls.Config, params, model_cls.name), dataset, "cpu")


@pytest.mark.parametrize("model_cls", MODELS)
def test_each_model_trains_with_finite_losses_on_real_labels(model_cls, digits):
    model = _build(model_cls, digits)
    assert model.class_factor == "digit" and model.num_classes == 10
    rng = np.random.default_rng(0)
    for step in range(3):
        images, factors = digits.sample(16, rng)
        losses = model.train_step(images, factors, step)
        assert losses and all(math.isfinite(v) for v in losses.values())
    if model_cls is ACGAN:  # the class loss on real images uses the batch's labels
        assert 0 < losses["class_loss_real"] < 2 * math.log(10)


def test_condition_defaults_to_the_first_categorical_factor_and_unknown_names_fail(digits):
    assert CGAN.dataset_defaults(digits)["condition"] == "digit"
    assert _build(CGAN, digits, condition="").class_factor == "digit"
    with pytest.raises(ValueError, match="'shape' is not a categorical factor of 'digits'; "
                                         "choose one of: digit"):
        _build(CGAN, digits, condition="shape")


def test_projection_discriminator_adds_the_label_embeddings_inner_product():
    torch.manual_seed(0)
    d = Discriminator((1, 8, 8), (4,), 5, spectral_norm=False, projection_classes=3)
    with torch.no_grad():
        d.d_head.weight.fill_(1.0)
        d.d_head.bias.fill_(0.5)
        d.embed.weight.copy_(torch.arange(3.0)[:, None].expand(3, 5))  # class k: k * ones
    images = torch.rand(6, 1, 8, 8)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    features = d.trunk(images).sum(1)
    logits, q = d(images, labels)
    # psi(phi) = sum(phi) + 0.5 and <embed(k), phi> = k * sum(phi)
    assert torch.allclose(logits, (1 + labels) * features + 0.5)
    assert q is None
    with pytest.raises(ValueError, match="class labels"):
        d(images)


def test_projection_defaults_are_the_papers_and_its_embedding_is_trained(digits):
    model = _build(ProjectionCGAN, digits)
    assert model.config.loss == "hinge" and model.config.spectral_norm
    assert not model.config.batchnorm
    trained = {id(p) for group in model.opt_d.param_groups for p in group["params"]}
    assert all(id(p) in trained for p in model.discriminator.embed.parameters())


def test_cgan_discriminator_sees_the_label(digits):
    model = _build(CGAN, digits).eval()
    images = digits.sample(4, np.random.default_rng(0))[0]
    with torch.no_grad():
        a, _ = model.discriminate(images, torch.zeros(4, dtype=torch.long))
        b, _ = model.discriminate(images, torch.full((4,), 7))
    assert not torch.allclose(a, b)


def test_representation_reads_noise_and_label_from_the_predicted_generator_input(digits):
    model = _build(CGAN, digits)
    predicted = torch.zeros(2, 3 + 10)
    predicted[:, :3] = torch.tensor([[0.1, 0.2, 0.3], [-1.0, 0.0, 1.0]])
    predicted[0, 3 + 4] = 0.9
    predicted[1, 3 + 9] = 0.6
    rep = model.representation(predicted)
    np.testing.assert_allclose(rep.continuous, predicted[:, :3].numpy(), rtol=1e-6)
    assert rep.categorical.tolist() == [[4], [9]]


def test_class_grid_has_a_row_per_class_sharing_noise_along_columns(digits):
    model = _build(ProjectionCGAN, digits).eval()
    grid = model.traversals(torch.Generator().manual_seed(0))["classes"]
    assert grid.shape == (10, 8, 1, 8, 8)
    noise = model.sample_latent(8, torch.Generator().manual_seed(0)).noise
    with torch.no_grad():
        row3 = model.generator(model.latent_vector(Labelled(noise, torch.full((8,), 3))))
    assert torch.allclose(grid[3], row3)


# -- conditional accuracy --------------------------------------------------------------------


def test_conditional_accuracy_core_on_known_predictions():
    classes = np.array([0, 0, 1, 1, 2, 2])
    assert conditional.conditional_accuracy(classes, np.array([0, 0, 1, 2, 2, 2]), 3) == {
        "conditional_accuracy": pytest.approx(5 / 6)}
    permuted = np.array([2, 2, 0, 0, 1, 1])  # a code whose values name the classes differently
    assert conditional.conditional_accuracy(classes, permuted, 3)["conditional_accuracy"] == 0
    assert conditional.conditional_accuracy(classes, permuted, 3, matched=True) == {
        "conditional_accuracy": 1.0}


class _FixedGenerator(torch.nn.Module):
    """A stand-in class-conditional generator that draws real images of chosen classes."""

    def __init__(self, dataset, value_of_class: list[int], class_factor: str | None):
        super().__init__()
        self.dataset, self.value_of_class = dataset, value_of_class
        self.class_factor, self.num_classes = class_factor, len(value_of_class)
        self.device = torch.device("cpu")

    def generate_class(self, n: int, cls: int, generator: torch.Generator) -> torch.Tensor:
        seed = int(torch.randint(0, 2**31, (1,), generator=generator))
        factors = self.dataset.sample_factors(n, np.random.default_rng(seed))
        factors[:, 0] = self.value_of_class[cls]
        return self.dataset.images(factors)


class _Quadrants(FactorDataset):
    """8x8 images of a 2x2 block at one of 9 places inside one of 4 quadrants."""

    name = "quadrants"
    factor_names = ("quadrant", "position")
    factor_sizes = (4, 9)
    image_shape = (1, 8, 8)
    categorical_factors = ("quadrant",)

    def images(self, factors: np.ndarray, rng: np.random.Generator | None = None
               ) -> torch.Tensor:
        out = torch.zeros(len(factors), 1, 8, 8)
        for i, (quadrant, place) in enumerate(self.check_factors(factors)):
            top, left = 4 * (quadrant // 2) + place // 3, 4 * (quadrant % 2) + place % 3
            out[i, 0, top:top + 2, left:left + 2] = 1
        return out


@pytest.fixture
def quadrants(workdir) -> _Quadrants:
    """The toy dataset, with the classifier cache in the test's folder."""
    return _Quadrants()


def _score(model, dataset) -> dict[str, float]:
    return conditional.score(Observer(model, dataset), np.random.default_rng(0), **JUDGE)


def test_oracle_generator_scores_one_and_a_constant_one_one_over_k(quadrants):
    oracle = _FixedGenerator(quadrants, [0, 1, 2, 3], "quadrant")
    assert isinstance(oracle, ClassConditional)
    scores = _score(oracle, quadrants)
    assert scores == {"conditional_accuracy": 1.0, "conditional_accuracy.classifier": 1.0}
    constant = _score(_FixedGenerator(quadrants, [1, 1, 1, 1], "quadrant"), quadrants)
    assert constant["conditional_accuracy"] == pytest.approx(1 / 4)
    # an unsupervised code (class_factor None) with permuted values is matched by Hungarian
    permuted = _FixedGenerator(quadrants, [2, 0, 3, 1], None)
    assert _score(permuted, quadrants)["conditional_accuracy"] == 1.0
    assert _score(_FixedGenerator(quadrants, [2, 0, 3, 1], "quadrant"), quadrants)[
        "conditional_accuracy"] == 0.0


def test_classifier_is_cached_per_dataset_factor_and_shape(quadrants, workdir, monkeypatch):
    _score(_FixedGenerator(quadrants, [0, 1, 2, 3], "quadrant"), quadrants)
    cached = list((workdir / "cache" / "classifiers").glob("*.pt"))
    assert [p.name for p in cached] == ["quadrants-quadrant-1x8x8-n300-s40-r1.pt"]

    def retrain(*args, **kwargs):
        raise AssertionError("the cached classifier should have been used")

    monkeypatch.setattr(conditional, "train_classifier", retrain)
    again = _score(_FixedGenerator(quadrants, [0, 1, 2, 3], "quadrant"), quadrants)
    assert again == {"conditional_accuracy": 1.0, "conditional_accuracy.classifier": 1.0}


def test_models_without_classes_are_not_applicable(quadrants):
    with pytest.raises(NotApplicable, match="chosen class"):
        _score(torch.nn.Linear(1, 1), quadrants)
    params = {**GAN_TINY, "categorical_sizes": (), "continuous_dim": 2}
    no_code = InfoGAN(cfg.instantiate(InfoGAN.Config, params, "infogan"), quadrants, "cpu")
    with pytest.raises(NotApplicable, match="no classes"):
        _score(no_code, quadrants)


def test_infogan_generates_by_its_first_categorical_code(quadrants):
    torch.manual_seed(0)
    params = {**InfoGAN.dataset_defaults(quadrants), **GAN_TINY, "continuous_dim": 1}
    model = InfoGAN(cfg.instantiate(InfoGAN.Config, params, "infogan"), quadrants, "cpu").eval()
    assert isinstance(model, ClassConditional)
    assert model.class_factor is None and model.num_classes == 4
    images = model.generate_class(4, 2, torch.Generator().manual_seed(0))
    latent = model.sample_latent(4, torch.Generator().manual_seed(0))
    latent.classes[:, 0] = 2
    with torch.no_grad():
        expected = model.generator(model.latent_vector(latent))
    assert torch.allclose(images, expected)


# -- through the command line ---------------------------------------------------------------


def test_list_shows_the_conditional_gans_and_the_metric(workdir, capsys):
    assert main(["list"]) == 0
    names = {line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert {"cgan", "acgan", "projection_cgan", "conditional_accuracy"} <= names


@pytest.mark.parametrize("model", ["cgan", "acgan", "projection_cgan"])
def test_each_runs_through_the_cli_on_digits(workdir, capsys, model):
    argv = ["run", model, "--dataset", "digits", "--steps", "3", "--no-progress",
            "--metrics", "mig,categorical_accuracy"]
    for key, value in {**TINY, "d_channels": "8,8"}.items():
        argv += ["--set", f"{key}={value}"]
    assert main(argv) == 0
    assert "finished at step 3" in capsys.readouterr().out
    client = MlflowClient(f"sqlite:///{Path('mlflow.db').resolve()}")
    run = client.search_runs([client.get_experiment_by_name("digits").experiment_id])[0]
    assert run.data.params["model.condition"] == "digit"
    assert 0 <= run.data.metrics["eval/categorical_accuracy"] <= 1
    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    assert (artifacts / "traversals" / "classes.png").is_file()
    # conditional accuracy with a small classifier budget (the defaults take minutes)
    assert main(["evaluate", run.info.run_id, "--metrics", "conditional_accuracy",
                 "--param", "conditional_accuracy.classifier_images=400",
                 "--param", "conditional_accuracy.classifier_steps=5"]) == 0
    metrics = client.get_run(run.info.run_id).data.metrics
    assert 0 <= metrics["eval/conditional_accuracy"] <= 1
    assert 0 < metrics["eval/conditional_accuracy.classifier"] <= 1
