"""Model selection without labels: the array-level cores of UDR, ModelCentrality and
information on representations with known answers, their sampling on toy generators, and
``disentangle select`` on real suites (ranking, artifacts, errors)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

from disentangle import selection
from disentangle.cli import main
from disentangle.models import ClassPosterior, HoldsCodes, Representation
from disentangle_plugins.datasets.digits import Digits


def orthonormal_codes(n: int, d: int, seed: int) -> np.ndarray:
    """``[n, d]`` codes whose columns have mean 0, standard deviation 1 and are exactly
    uncorrelated: the lasso's weights on them are then known in closed form."""
    raw = np.random.default_rng(seed).normal(size=(n, d))
    q, _ = np.linalg.qr(raw - raw.mean(axis=0))
    return q * np.sqrt(n)


def test_relative_strength_of_known_matrices():
    assert selection.relative_strength(np.eye(4)) == 1.0
    assert selection.relative_strength(np.eye(4)[[2, 0, 3, 1]] * 0.5) == pytest.approx(0.5)
    assert selection.relative_strength(np.ones((3, 3))) == pytest.approx(1 / 3)
    # one strong match per column, rows unequal: columns give 1, rows (0.81/0.9 + 1) / 2
    matrix = np.array([[0.9, 0.0], [0.0, 1.0]])
    assert selection.relative_strength(matrix) == pytest.approx((0.9 + 1.0) / 2)
    assert selection.relative_strength(np.zeros((2, 3))) == 0.0
    assert selection.relative_strength(np.zeros((0, 3))) == 0.0


def test_udr_scores_identical_runs_one_minus_alpha_and_unrelated_runs_zero():
    base = orthonormal_codes(2000, 4, 0)
    permuted = -3.0 * base[:, [2, 0, 3, 1]] + 5.0  # same codes: reordered, flipped, scaled
    unrelated = orthonormal_codes(2000, 4, 1)
    on = np.ones(4, dtype=bool)
    scores, pairwise = selection.udr([base, permuted, base, unrelated], [on] * 4)
    # lasso weight of an exactly matching standardised code: 1 - alpha
    assert scores[:3] == pytest.approx([0.9] * 3, abs=1e-3)
    assert scores[3] < 0.02
    assert pairwise[0, 1] == pytest.approx(0.9, abs=1e-3) and np.diag(pairwise).sum() == 0
    scores, _ = selection.udr([base, permuted, base, unrelated], [on] * 4, "spearman")
    assert min(scores[:3]) > 0.85 and scores[3] < 0.2


def test_udr_leaves_out_inactive_and_constant_codes():
    base = orthonormal_codes(1000, 3, 0)
    noise = np.random.default_rng(5).normal(size=(1000, 1))
    with_noise = np.concatenate([base, noise], axis=1)
    with_constant = np.concatenate([base, np.full((1000, 1), 2.0)], axis=1)
    on3, on4 = np.ones(3, dtype=bool), np.ones(4, dtype=bool)
    clean, _ = selection.udr([base, base, base], [on3] * 3)
    muted, _ = selection.udr([base, with_noise, base],
                             [on3, np.array([True, True, True, False]), on3])
    assert muted == pytest.approx(clean, abs=1e-6)
    noisy, _ = selection.udr([base, with_noise, base], [on3, on4, on3])
    assert noisy[1] < clean[1] - 0.1  # an unmatched active code costs its run
    constant, _ = selection.udr([base, with_constant, base], [on3, on4, on3])
    assert constant == pytest.approx(clean, abs=1e-6)


def test_categorical_codes_enter_udr_as_one_indicator_per_class():
    rep = Representation(np.array([[0.5], [1.5], [2.5]]), np.array([[2, 0], [0, 1], [2, 1]]))
    assert selection.indicator_codes(rep).tolist() == [
        [0.5, 0, 0, 1, 1, 0], [1.5, 1, 0, 0, 0, 1], [2.5, 0, 0, 1, 0, 1]]
    # the same classes numbered differently by two runs match one to one, as identical
    # continuous codes do (1 - alpha); unrelated classes do not match at all
    rng = np.random.default_rng(0)
    classes, unrelated = rng.integers(0, 4, size=(800, 1)), rng.integers(0, 4, size=(800, 1))
    first, second, third = (
        selection.indicator_codes(Representation(np.zeros((800, 0)), c))
        for c in (classes, np.array([2, 3, 0, 1])[classes], unrelated))
    scores, _ = selection.udr([first, second, first, third], [np.ones(4, dtype=bool)] * 4)
    assert scores == pytest.approx([0.9, 0.9, 0.9, 0.0], abs=1e-3)


def held_groups(num_groups: int, size: int, codes: int, seed: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Groups ``[B, L, codes]`` of uniform codes where group ``b`` holds code ``b % codes``."""
    rng = np.random.default_rng(seed)
    held = np.arange(num_groups) % codes
    groups = rng.uniform(-1, 1, size=(num_groups, size, codes))
    groups[np.arange(num_groups), :, held] = rng.uniform(-1, 1, size=(num_groups, 1))
    return groups, held


def test_held_code_similarity_is_one_for_an_encoder_that_reads_the_codes():
    groups, held = held_groups(200, 30, 5, 0)
    assert selection.held_code_similarity(groups, held, 5) == 1.0
    # another order and scale of the same codes, and an extra constant code
    other = np.concatenate([2 * groups[..., [4, 3, 2, 1, 0]], np.zeros((200, 30, 1))], axis=2)
    assert selection.held_code_similarity(other, held, 5) == 1.0


def test_held_code_similarity_of_an_unrelated_encoder_is_near_chance():
    groups, held = held_groups(500, 30, 5, 0)
    unrelated = np.random.default_rng(9).uniform(-1, 1, size=groups.shape)
    assert selection.held_code_similarity(unrelated, held, 5) < 0.35  # chance: 1 / 5


def test_centrality_is_the_mean_similarity_to_the_others_of_the_symmetrised_matrix():
    similarity = np.array([[1.0, 0.8, 0.2], [0.6, 1.0, 0.4], [0.2, 0.4, 1.0]])
    # (S + S^T) / 2 = [[1, .7, .2], [.7, 1, .4], [.2, .4, 1]]
    assert selection.centrality(similarity) == pytest.approx([0.45, 0.55, 0.3])


def test_class_information_of_known_probabilities():
    confident = np.eye(4)[np.arange(400) % 4]
    assert selection.class_information(confident) == pytest.approx(1.0)
    assert selection.class_information(np.full((400, 4), 0.25)) == pytest.approx(0.0)
    assert selection.class_information(np.eye(4)[np.zeros(400, int)]) == pytest.approx(0.0)
    assert selection.class_information(np.eye(4)[np.arange(400) % 2]) == pytest.approx(0.5)
    # half the images sure of class 0, half unsure between 0 and 1: mean (0.75, 0.25),
    # entropy 0.5623 nats, less the mean entropy ln(2) / 2, over ln 2
    halves = np.array([[1.0, 0.0], [0.5, 0.5]] * 50)
    expected = (-(0.75 * np.log(0.75) + 0.25 * np.log(0.25)) - np.log(2) / 2) / np.log(2)
    assert selection.class_information(halves) == pytest.approx(expected)
    assert selection.class_information(np.ones((10, 1))) == 0.0


class BrightnessClasses(nn.Module):
    """A model whose first categorical code is the image's brightness quartile, read with
    certainty (or, with ``unsure``, a uniform guess), and whose second is always unsure."""

    cat_sizes = (4, 3)

    def __init__(self, unsure: bool = False):
        super().__init__()
        self.unsure = unsure
        self.device = torch.device("cpu")

    def class_probabilities(self, images: torch.Tensor) -> list[np.ndarray]:
        brightness = images.flatten(1).mean(1).numpy()
        quartile = np.argsort(np.argsort(brightness, kind="stable")) * 4 // len(images)
        first = np.full((len(images), 4), 0.25) if self.unsure else np.eye(4)[quartile]
        return [first, np.full((len(images), 3), 1 / 3)]


def test_information_scores_average_a_models_codes_over_the_same_real_images():
    digits = Digits()
    models = [BrightnessClasses(), BrightnessClasses(unsure=True)]
    assert all(isinstance(m, ClassPosterior) for m in models)
    # 64 images: one encoder call each, so the quartiles are of every image; 1 and 0 averaged
    # with the unsure second code's 0
    scores = selection.information_scores(models, digits, num_points=64, seed=3)
    assert scores == pytest.approx([0.5, 0.0])
    assert selection.unable([*models, PixelCodes(2)], "information") == [2]


class PixelCodes(nn.Module):
    """A generator whose 1x1xd "image" is its code vector, and an encoder that reads the
    pixels back in the order ``reads`` (or, with ``blind``, ignores them)."""

    def __init__(self, d: int, reads: list[int] | None = None, blind: bool = False):
        super().__init__()
        self.d, self.reads, self.blind = d, reads or list(range(d)), blind
        self.device = torch.device("cpu")

    def code_names(self) -> list[str]:
        return [f"c{k}" for k in range(self.d)]

    def generate_holding(self, n: int, code: int, generator: torch.Generator) -> torch.Tensor:
        codes = torch.rand(n, self.d, generator=generator) * 2 - 1
        codes[:, code] = codes[0, code]
        return codes.view(n, 1, 1, self.d)

    def encode(self, images: torch.Tensor) -> Representation:
        flat = images.view(len(images), -1).double().numpy()
        if self.blind:
            flat = np.random.default_rng(int(flat.sum() * 1e6) % 2**32).uniform(
                -1, 1, size=flat.shape)
        return Representation(flat[:, self.reads], np.zeros((len(flat), 0), np.int64))


def test_centrality_sampling_ranks_agreeing_generators_above_an_unrelated_one():
    models = [PixelCodes(4), PixelCodes(4, [3, 1, 0, 2]), PixelCodes(4, blind=True)]
    assert all(isinstance(m, HoldsCodes) for m in models)
    similarity = selection.centrality_similarity(models, votes=80, group_size=20, seed=0)
    assert similarity[0, 1] == similarity[1, 0] == similarity[0, 0] == 1.0
    assert similarity[2, 0] < 0.5  # the blind encoder votes at chance
    scores = selection.centrality(similarity)
    assert min(scores[:2]) > scores[2] + 0.1  # its own images are read by the others
    again = selection.centrality_similarity(models, votes=80, group_size=20, seed=0)
    assert np.array_equal(similarity, again)  # seeded


# -- the command ---------------------------------------------------------------------------

SUITE = """
name: {name}
description: tiny InfoGAN runs for selection
datasets: {datasets}
seeds: {seeds}
steps: 4
eval_every: 1000
metrics: [categorical_accuracy, mig]
runs:
{runs}
"""


def bench(name: str, datasets: str = "[digits]", seeds: str = "[0, 1, 2]",
          runs: str = "  - model: infogan") -> None:
    Path(f"{name}.yaml").write_text(SUITE.format(name=name, datasets=datasets, seeds=seeds,
                                                 runs=runs))
    assert main(["bench", f"{name}.yaml", "--no-progress"]) == 0


def test_select_ranks_a_suite_and_logs_the_ranking_to_its_parent(workdir, capsys):
    bench("three")
    capsys.readouterr()
    assert main(["select", "--suite", "three", "--votes", "30", "--group-size", "10",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "ranked by centrality (30 groups of 10 generated images per pair)" in out
    assert "Spearman rank correlation" in out and "median run" in out
    ranking = (workdir / "selection-three" / "ranking.csv").read_text().splitlines()
    assert ranking[0].startswith("rank,") and len(ranking) == 4
    assert (workdir / "selection-three" / "selection.png").stat().st_size > 0
    client = MlflowClient(f"sqlite:///{workdir}/mlflow.db")
    parent = client.search_runs([client.get_experiment_by_name("suite-three").experiment_id],
                                "tags.`disentangle.suite.key` = 'parent'")[0].info.run_id
    logged = {a.path for a in client.list_artifacts(parent, "selection/centrality")}
    assert logged == {f"selection/centrality/{f}"
                      for f in ("ranking.csv", "pairwise.csv", "selection.png")}
    assert main(["select", "--suite", "three", "--method", "udr", "--points", "200",
                 "--out", "udr"]) == 0
    assert "ranked by udr (200 real images, lasso similarity)" in capsys.readouterr().out
    assert main(["select", "--suite", "three", "--method", "information", "--points", "300",
                 "--out", "information"]) == 0
    out = capsys.readouterr().out
    assert "ranked by information (300 real images)" in out
    assert "ranking and plot written to information" in out
    assert sorted(p.name for p in (workdir / "information").iterdir()) == [
        "ranking.csv", "selection.png"]
    logged = {a.path for a in client.list_artifacts(parent, "selection/information")}
    assert logged == {"selection/information/ranking.csv",
                      "selection/information/selection.png"}
    scores = [float(line.split(",")[-1]) for line in
              (workdir / "information" / "ranking.csv").read_text().splitlines()[1:]]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)


def test_select_falls_back_to_udr_for_models_that_cannot_hold_codes(workdir, capsys):
    bench("mixed", seeds="[0, 1]",
          runs="  - model: infogan\n  - model: cgan\n    set: {inverse_steps: 5}")
    capsys.readouterr()
    assert main(["select", "--suite", "mixed", "--points", "200"]) == 0
    assert "ranked by udr" in capsys.readouterr().out
    assert main(["select", "--suite", "mixed", "--method", "centrality"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: --method centrality needs models that generate from codes they "
                   "can hold; cgan cannot: use --method udr")
    assert main(["select", "--suite", "mixed", "--method", "information"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: --method information needs models that read class probabilities "
                   "of a categorical code off an image; cgan cannot: use --method udr")


def test_select_refuses_what_it_cannot_rank_in_one_line(with_toy, workdir, capsys):
    bench("two", seeds="[0, 1]")
    bench("both", datasets="[digits, toy_blobs]", seeds="[0]")
    capsys.readouterr()
    cases = [
        (["--suite", "nosuch"], f"error: no suite 'nosuch' in sqlite:///{workdir}/mlflow.db "
                                f"(run it with `disentangle bench nosuch`)"),
        (["--suite", "two"], "error: suite 'two' has 2 finished run(s); ranking needs at "
                             "least 3"),
        (["--suite", "both"], "error: suite 'both' has runs of 2 datasets (digits: 1, "
                              "toy_blobs: 1); runs are ranked against runs of the same data: "
                              "choose one with --dataset"),
        (["--suite", "both", "--dataset", "digits"],
         "error: suite 'both' has 1 finished run(s) on digits; ranking needs at least 3"),
        (["--suite", "two", "--group-size", "1"], "error: --group-size must be at least 2, "
                                                  "not 1"),
    ]
    for arguments, message in cases:
        assert main(["select", *arguments]) == 2
        assert capsys.readouterr().err.strip() == message
