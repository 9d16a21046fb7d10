"""The array-level core of every first-party metric, by name.

Each core is a pure function of arrays (codes ``[N, d]``, integer factors ``[N, K]``, ...)
returning named scores, defined in its metric plugin beside the sampler that feeds it::

    from disentangle import cores
    cores.mig(codes, factors)["mig"]

Third-party metrics' cores are found the way every plugin is: ``registry.metric(name).core``.
"""

from __future__ import annotations

from disentangle_plugins.metrics.beta_vae import beta_vae
from disentangle_plugins.metrics.categorical import categorical_accuracy
from disentangle_plugins.metrics.conditional import conditional_accuracy
from disentangle_plugins.metrics.dci import dci, dci_fast, dci_sklearn
from disentangle_plugins.metrics.dci_es import dci_es
from disentangle_plugins.metrics.factor_vae import factor_vae
from disentangle_plugins.metrics.infomec import infomec
from disentangle_plugins.metrics.irs import irs
from disentangle_plugins.metrics.mi_gaps import dcimig, jemmig, mig_sup
from disentangle_plugins.metrics.mig import mig
from disentangle_plugins.metrics.modularity import modularity
from disentangle_plugins.metrics.sap import sap
from disentangle_plugins.metrics.unsupervised import (
    gaussian_total_correlation,
    gaussian_wasserstein_correlation,
    pairwise_mutual_info,
)
from disentangle_plugins.metrics.z_variance import z_max, z_min

__all__ = [
    "beta_vae", "categorical_accuracy", "conditional_accuracy", "dci", "dci_es", "dci_fast",
    "dci_sklearn", "dcimig", "factor_vae", "gaussian_total_correlation",
    "gaussian_wasserstein_correlation", "infomec", "irs", "jemmig", "mig", "mig_sup",
    "modularity", "pairwise_mutual_info", "sap", "z_max", "z_min",
]
