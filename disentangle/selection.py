"""Choosing among runs without factor labels: ModelCentrality, UDR and information.

The first two rest on one observation: disentangled representations of the same data are
alike (up to the order and sign of their codes), while each entangled one is entangled its
own way. So a run that many other runs agree with is likely a disentangled one, and picking
it needs no ground-truth factors. The third judges each run on its own, for when the runs
share one failure and agreement then rewards it.

* **ModelCentrality** (Lin et al., ICML 2020, with InfoGAN-CR). Run ``i``'s similarity to
  run ``j`` is the FactorVAE score of ``i``'s encoder on images made by ``j``'s generator,
  ``j``'s codes standing in for the ground-truth factors. Each vote is a group of images
  that share the value of one of ``j``'s codes (the codes taken in turn); it votes for the
  code of ``i`` whose variance within the group, over its variance across all groups, is
  least. Each of ``i``'s codes is assigned the held code it got most votes with, and the
  similarity is the share of votes that assignment gets right (on the votes themselves).
  With ``A = (S + S^T) / 2``, a run's centrality is its mean similarity to the other runs.
  Two identical models whose encoders read every code back score 1; an unrelated encoder
  scores the vote's chance level, about ``1 / K`` for ``K`` held codes.
* **UDR** (Duan et al., ICLR 2020), as disentanglement_lib computes it. Every run encodes
  the same real images (posterior means; a categorical code as one indicator per class,
  which the reference, written for VAEs, has no need of). Each run's codes are
  standardised; a code is active when its KL divergence from the prior exceeds 0.01 (for
  a model without a posterior, when it is not constant). For runs ``i`` and ``j`` a
  similarity matrix ``R[a, b]`` between ``i``'s code ``a`` and ``j``'s code ``b`` is the
  absolute weight of a lasso regression (``alpha`` 0.1) of ``j``'s codes on ``i``'s, or
  the absolute Spearman correlation. On the active codes of both, its *relative strength*
  is the mean over columns of ``max^2 / sum``, averaged with the same over rows: 1 when
  each code matches exactly one code of the other run. A run's UDR is the median over the
  other runs ``j`` of the pair ``(j, i)``. Identical runs score ``1 - alpha`` with the
  lasso (its shrinkage of every weight: 0.9 at the reference's alpha), unrelated ones
  about 0.
* **Information**, for models whose encoder gives class probabilities for categorical
  codes (InfoGAN's Q: :class:`ClassPosterior`). It is the mutual information between a
  real image ``x`` and the class ``c`` that Q reads off it, ``H(E_x q(c|x)) -
  E_x H(q(c|x))``, over ``ln k`` for ``k`` classes (averaged over the categorical codes):
  the criterion of regularised information maximisation (Krause, Perona and Gomes, NIPS
  2010), and InfoGAN's own objective taken on the data instead of on the generator's
  images, where every trained run is near its maximum. It is 1 when Q puts the real
  images into ``k`` equally common classes with certainty, and 0 when it is unsure of
  every image or puts all of them in one class: a code that has split the data into
  confident, balanced classes has found structure that is there.

The array-level cores (:func:`relative_strength`, :func:`udr`, :func:`centrality`,
:func:`held_code_similarity`, :func:`class_information`) are kept apart from the sampling
that feeds them (:func:`centrality_similarity`, :func:`udr_codes`,
:func:`information_scores`), as the metrics are.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from disentangle import compare, cores
from disentangle.datasets import FactorDataset
from disentangle.evaluation import encoding_batch
from disentangle.metrics import normalized_entropy
from disentangle.models import (
    ClassPosterior,
    CodeKL,
    HoldsCodes,
    Model,
    Representation,
    eval_mode,
)

#: a code is active for UDR when its KL divergence from the prior exceeds this (nats)
KL_THRESHOLD = 0.01
#: real images every model encodes, by default, for the methods that encode real images
POINTS = {"udr": 1000, "information": 10_000}
#: what each method needs of a model (the methods not named here judge any model)
NEEDS = {"centrality": "models that generate from codes they can hold",
         "information": "models that read class probabilities of a categorical code off an "
                        "image"}


# -- array-level cores ---------------------------------------------------------------------


def relative_strength(similarity: np.ndarray) -> float:
    """UDR's score of one similarity matrix ``[a, b]`` (non-negative): the mean over columns
    of ``max^2 / sum``, averaged with the same over rows; 0 for an empty matrix, and a
    column or row of zeros counts 0."""
    similarity = np.asarray(similarity, dtype=np.float64)
    if similarity.size == 0:
        return 0.0

    def one_side(axis: int) -> float:
        total = similarity.sum(axis=axis)
        peak = similarity.max(axis=axis)
        ratio = np.divide(peak ** 2, total, out=np.zeros_like(total), where=total > 0)
        return float(ratio.mean())

    return (one_side(0) + one_side(1)) / 2


def standardised(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes ``[N, d]`` with each column at mean 0 and standard deviation 1 (constant columns
    set to 0), and which columns vary."""
    codes = np.asarray(codes, dtype=np.float64)
    std = codes.std(axis=0)
    varies = std > 1e-12
    out = np.zeros_like(codes)
    out[:, varies] = (codes[:, varies] - codes[:, varies].mean(axis=0)) / std[varies]
    return out, varies


def lasso_similarity(first: np.ndarray, second: np.ndarray, alpha: float = 0.1
                     ) -> np.ndarray:
    """``[d1, d2]``: the absolute weights of a lasso regression of ``second``'s standardised
    codes ``[N, d2]`` on ``first``'s ``[N, d1]``."""
    from sklearn.linear_model import Lasso

    fit = Lasso(alpha=alpha, random_state=0).fit(first, second)
    return np.abs(np.asarray(fit.coef_).reshape(second.shape[1], first.shape[1])).T


def spearman_similarity(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """``[d1, d2]``: the absolute Spearman rank correlation of every code of ``first``
    ``[N, d1]`` with every code of ``second`` ``[N, d2]`` (0 where a code is constant)."""
    from scipy.stats import rankdata

    a, _ = standardised(rankdata(first, axis=0))
    b, _ = standardised(rankdata(second, axis=0))
    return np.abs(a.T @ b) / len(a)


def udr(codes: Sequence[np.ndarray], active: Sequence[np.ndarray],
        similarity: Literal["lasso", "spearman"] = "lasso", alpha: float = 0.1
        ) -> tuple[np.ndarray, np.ndarray]:
    """UDR of each run, from the codes ``[N, d_i]`` every run gave the same ``N`` images
    and which of its codes are active ``[d_i]`` (bool); also the pairwise matrix ``P[i, j]``
    (the relative strength of ``i``'s codes against ``j``'s; 0 on the diagonal).

    A run's score is the median of ``P[j, i]`` over the other runs ``j``."""
    runs = [standardised(c) for c in codes]
    keep = [np.asarray(a, dtype=bool) & varies for a, (_, varies) in zip(active, runs)]
    n = len(runs)
    pairwise = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            first, second = runs[i][0], runs[j][0]
            matrix = (lasso_similarity(first, second, alpha) if similarity == "lasso"
                      else spearman_similarity(first, second))
            pairwise[i, j] = relative_strength(matrix[keep[i]][:, keep[j]])
    scores = np.array([np.median(np.delete(pairwise[:, i], i)) for i in range(n)])
    return scores, pairwise


def held_code_similarity(codes: np.ndarray, held: np.ndarray, num_held: int,
                         threshold: float = 0.05) -> float:
    """ModelCentrality's similarity from one encoder's codes ``[B, L, d]`` of ``B`` groups
    of ``L`` generated images, group ``b`` sharing the value of the generator's code
    ``held[b]`` (of ``num_held``): the FactorVAE score's majority vote, trained and scored
    on these votes, with the variance of each code over all the images as its scale."""
    codes = np.asarray(codes, dtype=np.float64)
    everything = codes.reshape(-1, codes.shape[2])
    return cores.factor_vae(everything, codes, held, codes, held, num_held,
                            threshold)["factor_vae"]


def centrality(similarity: np.ndarray) -> np.ndarray:
    """Each run's mean similarity to the other runs in the symmetrised matrix
    ``(S + S^T) / 2`` (the diagonal is not used)."""
    similarity = np.asarray(similarity, dtype=np.float64)
    n = len(similarity)
    symmetric = (similarity + similarity.T) / 2
    return (symmetric.sum(axis=1) - np.diag(symmetric)) / (n - 1)


def class_information(probabilities: np.ndarray) -> float:
    """The information between an image and its class, over ``ln k``, from the class
    probabilities ``[N, k]`` of ``N`` images (rows sum to 1): the entropy of their mean
    minus their mean entropy. 0 for a single class."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.shape[1] < 2:
        return 0.0
    return float(normalized_entropy(p.mean(axis=0), axis=0)
                 - normalized_entropy(p, axis=1).mean())


# -- sampling --------------------------------------------------------------------------------


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def centrality_similarity(models: Sequence[Model], votes: int = 500, group_size: int = 100,
                          seed: int = 0, progress: bool = False) -> np.ndarray:
    """``S[i, j]``: model ``i``'s encoder judged on ``votes`` groups of ``group_size``
    images from model ``j`` (which must hold codes: :class:`HoldsCodes`), by
    :func:`held_code_similarity`. Each group is generated once and read by every model."""
    n = len(models)
    similarity = np.zeros((n, n))
    bar = tqdm(total=n * votes, unit="group", desc="centrality", disable=not progress)
    with bar, contextlib.ExitStack() as stack:
        for model in models:
            stack.enter_context(eval_mode(model))
        for j, maker in enumerate(models):
            num_held = len(maker.code_names())
            held = np.arange(votes) % num_held
            generator = torch.Generator().manual_seed(_seed(seed, j))
            read: list[list[np.ndarray]] = [[] for _ in models]
            for code in held:
                images = maker.generate_holding(group_size, int(code), generator)
                for i, reader in enumerate(models):
                    read[i].append(reader.encode(images).codes())
                bar.update()
            for i in range(n):
                similarity[i, j] = held_code_similarity(np.stack(read[i]), held, num_held)
    return similarity


def indicator_codes(representation: Representation) -> np.ndarray:
    """The continuous codes, then one 0/1 column per class of each categorical code (a
    class number is no quantity to correlate: two runs may number the same classes
    differently, while their indicators match one to one)."""
    columns = [representation.continuous]
    for classes in representation.categorical.T:
        columns.append((classes[:, None] == np.arange(classes.max() + 1)).astype(np.float64))
    return np.concatenate(columns, axis=1)


def real_images(dataset: FactorDataset, num_points: int, seed: int) -> torch.Tensor:
    """``num_points`` real images of ``dataset`` (factors drawn uniformly), the same for
    every model judged with ``seed``."""
    rng = np.random.default_rng(_seed(seed, 1))
    return dataset.images(dataset.sample_factors(num_points, rng), rng)


def udr_codes(models: Sequence[Model], dataset: FactorDataset, num_points: int = POINTS["udr"],
              seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every model's codes of the same real images (:func:`real_images`) as
    :func:`indicator_codes` ``[num_points, d]``, and which columns are active: a
    continuous code whose KL from the prior exceeds :data:`KL_THRESHOLD` for a model with a
    posterior (:class:`CodeKL`), every column otherwise (constant ones are left out by
    :func:`udr`)."""
    images = real_images(dataset, num_points, seed)
    codes, active = [], []
    for model in models:
        chunks = images.split(encoding_batch(model.device))
        with eval_mode(model):
            codes.append(indicator_codes(Representation.concatenate(
                [model.encode(c) for c in chunks])))
            on = np.ones(codes[-1].shape[1], dtype=bool)
            if isinstance(model, CodeKL):
                kl = sum(model.code_kl(c) * len(c) for c in chunks) / len(images)
                on[:len(kl)] = kl > KL_THRESHOLD
        active.append(on)
    return codes, active


def information_scores(models: Sequence[Model], dataset: FactorDataset,
                       num_points: int = POINTS["information"], seed: int = 0) -> np.ndarray:
    """Each model's :func:`class_information` on the same real images
    (:func:`real_images`), averaged over its categorical codes (the models must be
    :class:`ClassPosterior` with at least one)."""
    images = real_images(dataset, num_points, seed)
    scores = []
    for model in models:
        chunks = images.split(encoding_batch(model.device))
        with eval_mode(model):
            parts = [model.class_probabilities(c) for c in chunks]
        per_code = [np.concatenate(code) for code in zip(*parts)]
        scores.append(np.mean([class_information(p) for p in per_code]))
    return np.array(scores)


def unable(models: Sequence[Model], method: str) -> list[int]:
    """The positions of the models that ``method`` cannot judge (:data:`NEEDS`)."""
    if method == "centrality":
        return [k for k, m in enumerate(models)
                if not isinstance(m, HoldsCodes) or not m.code_names()]
    if method == "information":
        return [k for k, m in enumerate(models)
                if not isinstance(m, ClassPosterior) or not m.cat_sizes]
    return []


# -- over the runs of a suite ----------------------------------------------------------------


@dataclass
class Selection:
    """The outcome: ``table`` (:func:`compare.tidy`) with ``score`` and ``rank`` columns,
    best first; the pairwise matrix behind the scores, in the table's order (None for a
    method that judges each run alone); and what was sampled."""

    method: str
    detail: str
    table: pd.DataFrame
    pairwise: np.ndarray | None

    @property
    def selected(self) -> pd.Series:
        return self.table.iloc[0]


def ranked(table: pd.DataFrame, scores: np.ndarray, pairwise: np.ndarray | None,
           method: str, detail: str) -> Selection:
    """The runs of ``table`` ordered by ``scores`` (highest first; the lower seed first
    among equals)."""
    table = table.assign(score=scores)
    order = np.lexsort((table["seed"].to_numpy(), -table["score"].to_numpy()))
    out = table.iloc[order].reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return Selection(method, detail, out,
                     None if pairwise is None else pairwise[np.ix_(order, order)])


def correlations(selection: Selection, metrics: Sequence[str]) -> dict[str, float]:
    """The Spearman rank correlation of the selection score with each supervised score,
    over the runs that logged it (NaN where either is constant or fewer than 3 runs)."""
    from scipy.stats import spearmanr

    out = {}
    for m in metrics:
        both = selection.table[["score", m]].dropna()
        constant = both["score"].nunique() < 2 or both[m].nunique() < 2
        out[m] = (float("nan") if len(both) < 3 or constant
                  else float(spearmanr(both["score"], both[m]).statistic))
    return out


def plot(selection: Selection, metrics: Sequence[str], path: Path, title: str) -> Path:
    """The pairwise matrix as a heat map (for a method that judges each run alone, its
    scores as bars), then per supervised score a scatter of it against the selection
    score, the selected run ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table, rho = selection.table, correlations(selection, metrics)
    panels = 1 + len(metrics)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 4.0), squeeze=False)
    first = axes[0, 0]
    labels = [f"#{r} s{s}" for r, s in zip(table["rank"], table["seed"])]
    ticks = list(range(len(labels)) if len(labels) <= 20 else [])
    tick_labels = [labels[t] for t in ticks]
    first.set_xticks(ticks, tick_labels, rotation=90, fontsize=7)
    if selection.pairwise is None:
        first.bar(range(len(table)), table["score"], color="C0")
        low, high = float(table["score"].min()), float(table["score"].max())
        margin = max(high - low, 1e-6) * 0.5
        first.set_ylim(low - margin, high + margin)
        first.set_ylabel(f"{selection.method} score", fontsize=8)
        first.set_title(f"{selection.method} score (rank order)", fontsize=9)
        first.tick_params(labelsize=7)
    else:
        off_diagonal = selection.pairwise.copy()
        np.fill_diagonal(off_diagonal, np.nan)  # a run against itself is not used
        shown = first.imshow(off_diagonal, cmap="viridis")
        first.set_yticks(ticks, tick_labels, fontsize=7)
        first.set_title(f"pairwise {selection.method} (rank order)", fontsize=9)
        fig.colorbar(shown, ax=first, fraction=0.046)
    for ax, m in zip(axes[0, 1:], metrics):
        for k, (_, group) in enumerate(table.groupby(compare.GROUP, sort=True)):
            ax.plot(group["score"], group[m], "o", color=f"C{k}", alpha=0.8,
                    label=" ".join(str(x) for x in group.iloc[0][compare.GROUP] if x))
        ax.plot([selection.selected["score"]], [selection.selected[m]], "o", markersize=13,
                markerfacecolor="none", markeredgecolor="black", label="selected")
        ax.axhline(float(table[m].median()), color="grey", linestyle=":", label="median run")
        ax.set_xlabel(f"{selection.method} score", fontsize=8)
        ax.set_ylabel(m, fontsize=8)
        ax.set_title(f"{m}: Spearman {rho[m]:+.2f}" if np.isfinite(rho[m]) else m, fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    if metrics:
        axes[0, 1].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write(selection: Selection, metrics: Sequence[str], out: Path, title: str) -> list[Path]:
    """``ranking.csv`` (the table), ``pairwise.csv`` (the matrix, rows and columns named by
    run id; not for a method without one) and ``selection.png`` in ``out``; returns their
    paths."""
    ranking = out / "ranking.csv"
    selection.table.to_csv(ranking, index=False)
    written = [ranking]
    if selection.pairwise is not None:
        ids = list(selection.table["run_id"])
        written.append(out / "pairwise.csv")
        pd.DataFrame(selection.pairwise, index=ids, columns=ids).to_csv(written[-1])
    return [*written, plot(selection, metrics, out / "selection.png", title)]
