"""Mutual-information scores after MIG: MIG-sup, DCIMIG and JEMMIG.

All three start from MIG's estimate: each code cut into 20 equal-width bins over the sample,
the plug-in mutual information ``I[i, k]`` (nats) of code ``i`` with factor ``k``, and each
factor's entropy ``H_k``. Factors that do not vary in the sample are left out. They score
the evaluation's shared uniform draw of ``num_points`` combinations (MIG's, IRS's and the
unsupervised scores' too), so the codes are drawn and encoded once for all of them.

* ``mig_sup`` (Li et al., ICLR 2020): MIG read per code. With ``I_n[i, k] = I[i, k] / H_k``,
  a code's score is the gap between its best and second-best factor; ``mig_sup`` is the mean
  over the codes that vary in the sample (the paper's authors average over active codes).
  It punishes one code holding several factors, which MIG cannot see. 1 is best.
  The implementation of Zaidi et al. divides by the code's entropy instead; we follow
  the paper, which divides by the factor's.
* ``dcimig`` (Sepliarskaia et al. 2019): each code's gap ``R_i`` between its best and
  second-best factor, unnormalised, is credited to its best factor; a factor's score
  ``S_k`` is the largest gap credited to it (0 if none); ``dcimig = sum_k S_k / sum_k H_k``.
  One number for both disentanglement (the gaps) and completeness (every factor needs a
  code of its own). 1 is best.
* ``jemmig`` (Do and Tran, ICLR 2020): for each factor, with ``z*`` its most informative
  code and ``z°`` the second, ``(H(z*, y_k) - I(z*; y_k) + I(z°; y_k)) / (H_k + log bins)``,
  the joint entropy of the best code and the factor less their information, plus the
  runner-up's information; ``jemmig`` is the mean over factors. **Lower is better**: 0 for
  a code that copies the factor exactly while no other code knows it, 1 at worst. The
  paper's authors estimate it with the encoder's Gaussian posteriors over 100 fixed bins
  on [-4, 4]; the codes here are the deterministic ones every other metric scores, cut
  like MIG's. (The implementation of Zaidi et al. reports ``1 -`` this value, in bits.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

import disentangle
from disentangle.codefactor import information, top_two
from disentangle.datasets import FactorDataset
from disentangle.errors import NotApplicable
from disentangle.metrics import Metric, Observer


def mig_sup(codes: np.ndarray, factors: np.ndarray, bins: int = 20,
            factor_names: Sequence[str] | None = None) -> dict[str, float]:
    """MIG-sup of codes ``[N, d]`` for integer factors ``[N, K]``: ``"mig_sup"`` and
    ``"mig_sup.active_codes"`` (the codes that vary in the sample, which it averages over)."""
    info, entropy, code_entropy, _ = information(codes, factors, bins, factor_names)
    if info.shape[1] < 2:
        raise NotApplicable("MIG-sup compares a code's two best factors and needs two "
                            "factors that vary")
    active = code_entropy > 0
    if not active.any():
        raise NotApplicable("no code varies in the sample")
    _, top, second = top_two((info / entropy)[active].T)
    return {"mig_sup": float((top - second).mean()),
            "mig_sup.active_codes": float(active.sum())}


def dcimig(codes: np.ndarray, factors: np.ndarray, bins: int = 20,
           factor_names: Sequence[str] | None = None) -> dict[str, float]:
    """DCIMIG of codes ``[N, d]`` for integer factors ``[N, K]``: ``"dcimig"`` and each
    factor's share ``"dcimig.<factor>"`` (its ``S_k / H_k``)."""
    info, entropy, _, names = information(codes, factors, bins, factor_names)
    if info.shape[1] < 2:
        raise NotApplicable("DCIMIG compares a code's two best factors and needs two "
                            "factors that vary")
    best, top, second = top_two(info.T)  # per code
    credit = np.zeros_like(info)
    credit[np.arange(len(info)), best] = top - second
    per_factor = credit.max(axis=0)
    scores = {"dcimig": float(per_factor.sum() / entropy.sum())}
    scores.update({f"dcimig.{n}": float(v) for n, v in zip(names, per_factor / entropy)})
    return scores


def jemmig(codes: np.ndarray, factors: np.ndarray, bins: int = 20,
           factor_names: Sequence[str] | None = None) -> dict[str, float]:
    """Normalised JEMMIG (lower is better) of codes ``[N, d]`` for integer factors
    ``[N, K]``: ``"jemmig"`` (the mean) and ``"jemmig.<factor>"``."""
    info, entropy, code_entropy, names = information(codes, factors, bins, factor_names)
    best, top, second = top_two(info)  # per factor
    joint = code_entropy[best] + entropy - top  # H(z*, y) = H(z*) + H(y) - I(z*; y)
    per_factor = (joint - top + second) / (entropy + np.log(bins))
    scores = {"jemmig": float(per_factor.mean())}
    scores.update({f"jemmig.{n}": float(v) for n, v in zip(names, per_factor)})
    return scores


def _sampler(core: Callable[..., dict[str, float]]) -> Callable[..., dict[str, float]]:
    def score(observer: Observer, rng: np.random.Generator, num_points: int = 10_000,
              bins: int = 20) -> dict[str, float]:
        """The core on the evaluation's shared uniform draw of ``num_points`` combinations."""
        codes, factors = observer.shared_sample(num_points)
        return core(codes.codes(), factors, bins, observer.dataset.factor_names)
    return score


def images(dataset: FactorDataset, num_points: int, bins: int) -> int:
    """Factor rows asked for: the shared sample."""
    return num_points


METRICS = [
    Metric("mig_sup", "MIG-sup: per-code gap between its two most informative factors "
                      "(20 bins, normalised by factor entropy)",
           mig_sup, _sampler(mig_sup), images,
           source='Li et al., ICLR 2020 (pro-VLAE)',
           cost='histograms; cheap'),
    Metric("dcimig", "DCIMIG: per-code MI gaps credited to their factor, summed over the "
                     "factors' entropies", dcimig, _sampler(dcimig), images,
                                           source='Sepliarskaia et al., 2019 (arXiv:1910.05587)',
                                           cost='histograms; cheap'),
    Metric("jemmig", "JEMMIG: joint entropy minus MI gap of each factor's best code, "
                     "normalised (lower is better)", jemmig, _sampler(jemmig), images,
                                                     source='Do and Tran, ICLR 2020',
                                                     cost='histograms; cheap'),
]


@disentangle.hookimpl
def disentangle_register_metrics() -> list[Metric]:
    return METRICS
