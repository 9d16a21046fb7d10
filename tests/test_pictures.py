"""The pictures researchers read first: the code-factor matrix, traversal figures and GIFs,
curves over training, and the order of a VAE's codes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from disentangle import codefactor, cores, pictures
from disentangle.artifacts import figure_rows


def _known_codes(n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Two uniform factors of 4 values; code 0 is factor 1 with a little noise, code 1 is
    noise, code 2 is twice factor 0."""
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 4, size=(n, 2))
    codes = np.stack([factors[:, 1] + rng.uniform(-0.1, 0.1, n), rng.normal(size=n),
                      2.0 * factors[:, 0]], axis=1)
    return codes, factors


def test_the_matrix_finds_which_code_holds_which_factor():
    codes, factors = _known_codes()
    matrix = codefactor.code_factor(codes, factors, ["a", "b", "c"], ["floor", "wall"])
    assert matrix.nmi.shape == (3, 2)
    assert matrix.nmi[2, 0] == pytest.approx(1.0) and matrix.nmi[0, 1] == pytest.approx(1.0)
    assert matrix.nmi[1].max() < 0.02 and matrix.nmi[0, 0] < 0.02
    assert matrix.order() == [2, 0, 1]  # by the factor held; the noise code last
    assert [matrix.best_factor(i) for i in range(3)] == ["wall", None, "floor"]
    assert matrix.gaps == pytest.approx([1 - matrix.nmi[:2, 0].max(),
                                         1 - matrix.nmi[1:, 1].max()])
    assert matrix.gaps.mean() == pytest.approx(cores.mig(codes, factors)["mig"])


def test_unnamed_codes_and_constant_factors():
    codes, factors = _known_codes(500)
    factors = np.concatenate([factors, np.zeros((500, 1), np.int64)], axis=1)
    matrix = codefactor.code_factor(codes, factors, ["a"])
    assert matrix.codes == ["a", "code_1", "code_2"]
    assert matrix.factors == ["factor0", "factor1"]  # the constant factor is left out


def test_the_matrix_is_saved_as_json_and_a_heatmap(tmp_path):
    codes, factors = _known_codes(500)
    matrix = codefactor.code_factor(codes, factors, ["a", "b", "c"], ["floor", "wall"])
    data, picture = codefactor.save(matrix, tmp_path / "eval" / "7", "toy")
    saved = json.loads(data.read_text())
    assert saved["order"] == ["c", "a", "b"] and saved["factors"] == ["floor", "wall"]
    assert np.allclose(saved["nmi"], matrix.nmi, atol=1e-6)
    assert set(saved["gaps"]) == {"floor", "wall"}
    with Image.open(picture) as image:
        assert image.format == "PNG" and image.width > 200 and image.height > 150


def test_labelled_rows_put_a_label_strip_left_of_the_grid():
    images = torch.rand(3, 5, 1, 8, 8)
    plain = pictures.grid(images)
    labelled = pictures.labelled_rows(images, ["latent_0  KL 2.10  scale", "b", "c"], "title")
    assert labelled.height == plain.height + 14
    assert labelled.width > plain.width + 100
    strip = labelled.width - plain.width
    assert np.array_equal(np.asarray(labelled)[14:, strip:], np.asarray(plain))


def test_a_traversal_gif_runs_through_the_columns_and_back(tmp_path):
    images = torch.rand(2, 5, 3, 8, 8)
    path = pictures.save_gif(images, tmp_path / "code.gif")
    with Image.open(path) as gif:
        assert gif.n_frames == 5 + 3
        gif.seek(0)
        first = np.asarray(gif.convert("RGB"))
        gif.seek(4)
        last = np.asarray(gif.convert("RGB"))
    assert first.shape == np.asarray(pictures.grid(images[:, 0].unsqueeze(0))).shape
    assert not np.array_equal(first, last)


def test_figure_rows_order_codes_by_strength_and_name_their_factor():
    codes, factors = _known_codes(500)
    matrix = codefactor.code_factor(codes, factors, ["a", "b", "c"], ["floor", "wall"])
    rows = figure_rows(["a", "b", "c", "d"], {"a": 0.5, "b": 2.0, "c": 1.0}, "KL", matrix)
    assert rows == [("b", "b  KL 2.00  no factor"), ("c", "c  KL 1.00  floor"),
                    ("a", "a  KL 0.50  wall"), ("d", "d")]
    assert figure_rows(["x", "y"], {}, "", None) == [("x", "x"), ("y", "y")]


def test_a_vae_measures_each_latents_kl(with_toy, monkeypatch):
    from disentangle.config import RunConfig, split_assignments
    from disentangle.plan import plan_new
    from disentangle.registry import get_registry
    from disentangle.run import build_model

    plan = plan_new(RunConfig(model="beta_vae", dataset="toy_blobs", device="cpu"),
                    split_assignments(["latent_dim=2", "channels=8,8", "dense_dim=16"]),
                    get_registry())
    model = build_model(plan, torch.device("cpu"))
    assert model.code_names() == ["latent_0", "latent_1"]
    posterior = (torch.tensor([[2.0, 0.0], [0.0, 0.0]]), torch.tensor([[0.0, 0.0], [0.0, 1.0]]))
    monkeypatch.setattr(model, "posterior", lambda images: posterior)
    # KL of N(m, e^v) from N(0, 1) is (m^2 + e^v - v - 1) / 2, averaged over the two images
    assert model.code_kl(torch.zeros(2, 1, 8, 8)) == pytest.approx(
        [(4.0 + 0.0) / 4, (0.0 + np.e - 2.0) / 4])
