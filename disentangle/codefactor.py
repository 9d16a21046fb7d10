"""Which code holds which factor: the normalised mutual information of every code with every
factor, its ordering, and its picture.

The matrix is MIG's own (:func:`information`, which the MIG plugins share: 20-bin
histograms of the codes on the evaluation's shared sample), divided by each factor's
entropy, so a column's largest entry minus its second largest is that factor's MIG gap.
Runs log it at every evaluation as ``eval/<step>/code_factor_mi.json`` and ``.png``, and
the traversal figure names each code after the factor it holds most of.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from disentangle.errors import NotApplicable
from disentangle.metrics import discretize, entropies, factor_labels, mutual_info_matrix


def information(codes: np.ndarray, factors: np.ndarray, bins: int,
                factor_names: Sequence[str] | None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """``I [d, K']`` (nats), the factors' entropies ``[K']``, the binned codes' entropies
    ``[d]`` and the names of the ``K'`` factors that vary in the sample."""
    codes, factors = np.asarray(codes), np.asarray(factors)
    if codes.shape[1] == 0:
        raise NotApplicable("the representation has no codes")
    names = np.array(factor_labels(factor_names, factors.shape[1]))
    entropy = entropies(factors)
    varies = entropy > 0
    if not varies.any():
        raise NotApplicable("no factor varies in the sample")
    binned = discretize(codes, bins)
    info = mutual_info_matrix(binned, factors[:, varies])
    return info, entropy[varies], entropies(binned), list(names[varies])


def top_two(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Along axis 0: the index of the largest entry, the largest and the second largest
    (0 when the axis has one entry)."""
    best = matrix.argmax(axis=0)
    ordered = -np.sort(-matrix, axis=0)
    second = ordered[1] if len(matrix) > 1 else np.zeros(matrix.shape[1])
    return best, ordered[0], second


#: factor rows of the matrix's sample: the shared draw MIG scores by default
SAMPLE = 10_000

#: a code holding less than this share of every factor's entropy holds no factor
CAPTURES = 0.05


@dataclass
class CodeFactor:
    """``nmi[i, j]``: mutual information of code ``i`` with factor ``j`` over the factor's
    entropy, in [0, 1]. Factors that do not vary in the sample are left out."""

    nmi: np.ndarray
    codes: list[str]
    factors: list[str]

    @property
    def gaps(self) -> np.ndarray:
        """Each factor's MIG gap: its best code's share minus the second best's."""
        _, top, second = top_two(self.nmi)
        return top - second

    def best_factor(self, code: int) -> str | None:
        """The factor code ``code`` holds most of, or None when it holds none (under
        :data:`CAPTURES` of every factor)."""
        j = int(self.nmi[code].argmax())
        return self.factors[j] if self.nmi[code, j] >= CAPTURES else None

    def order(self) -> list[int]:
        """The codes by the factor they capture (in the factors' order), the most
        informative first within a factor; codes that capture none come last."""
        def key(i: int) -> tuple[int, float]:
            j = int(self.nmi[i].argmax())
            held = self.nmi[i, j] >= CAPTURES
            return (j if held else len(self.factors), -float(self.nmi[i, j]))
        return sorted(range(len(self.codes)), key=key)

    def to_json(self) -> dict[str, Any]:
        return {"codes": self.codes, "factors": self.factors,
                "nmi": np.round(self.nmi, 6).tolist(),
                "gaps": dict(zip(self.factors, np.round(self.gaps, 6).tolist())),
                "order": [self.codes[i] for i in self.order()]}


def code_factor(codes: np.ndarray, factors: np.ndarray, code_names: Sequence[str] = (),
                factor_names: Sequence[str] | None = None, bins: int = 20) -> CodeFactor:
    """The matrix of codes ``[N, d]`` against integer factors ``[N, K]``; codes without a
    name in ``code_names`` are called ``code_<i>``."""
    info, entropy, _, names = information(codes, factors, bins, factor_names)
    labels = [code_names[i] if i < len(code_names) else f"code_{i}"
              for i in range(info.shape[0])]
    return CodeFactor(np.clip(info / entropy, 0.0, 1.0), labels, [str(n) for n in names])


def save(matrix: CodeFactor, folder: Path, title: str) -> tuple[Path, Path]:
    """Write ``code_factor_mi.json`` and ``code_factor_mi.png`` into ``folder``.

    The picture is a heatmap with the codes as rows in :meth:`CodeFactor.order`, each
    factor's best code framed in solid black and its runner-up in dashed grey, and the
    factor's MIG gap written under its name.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "code_factor_mi.json"
    data.write_text(json.dumps(matrix.to_json(), indent=2))

    order = matrix.order()
    shown = matrix.nmi[order]
    rows, cols = shown.shape
    fig = Figure(figsize=(max(5.0, 2.2 + 0.9 * cols), 1.5 + 0.32 * rows))
    ax = fig.add_subplot()
    image = ax.imshow(shown, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    for i in range(rows):
        for j in range(cols):
            ax.text(j, i, f"{shown[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if shown[i, j] > 0.6 else "white")
    ranked = np.argsort(-shown, axis=0, kind="stable")
    for j in range(cols):
        for place, style, colour in ((0, "solid", "black"), (1, "dashed", "0.75"))[:rows]:
            ax.add_patch(Rectangle((j - 0.47, ranked[place, j] - 0.47), 0.94, 0.94,
                                   fill=False, linestyle=style, edgecolor=colour,
                                   linewidth=2))
    gaps = matrix.gaps
    ax.set_xticks(range(cols), [f"{name}\ngap {g:.2f}" for name, g in zip(matrix.factors,
                                                                          gaps)], fontsize=8)
    ax.set_yticks(range(rows), [matrix.codes[i] for i in order], fontsize=8)
    ax.set_title(f"{title}\nMIG {gaps.mean():.3f}; framed: each factor's best\n"
                 "(solid) and second (dashed) code", fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.05, label="MI / H(factor)")
    fig.tight_layout()
    picture = folder / "code_factor_mi.png"
    fig.savefig(picture, dpi=100)
    return data, picture
