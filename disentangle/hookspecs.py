"""The hooks a disentangle plugin may implement.

A plugin is a plain Python module named in the ``disentangle`` entry-point group of its
distribution, for example in ``setup.cfg``::

    [options.entry_points]
    disentangle =
        my_model = my_package.my_model

The module implements any of the hooks below, each decorated with :data:`hookimpl`. The
first-party models, datasets and metrics are registered exactly this way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from disentangle.config import RunConfig
    from disentangle.datasets import FactorDataset
    from disentangle.metrics import Metric
    from disentangle.models import Model

PROJECT = "disentangle"

hookspec = pluggy.HookspecMarker(PROJECT)
#: Decorator for a plugin's hook implementations.
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def disentangle_register_models() -> list[type[Model]]:
    """Return the :class:`~disentangle.models.Model` subclasses this plugin provides.

    Each class carries its registry ``name`` and a ``Config`` dataclass of hyper-parameters.
    """


@hookspec
def disentangle_register_datasets() -> list[type[FactorDataset]]:
    """Return the :class:`~disentangle.datasets.FactorDataset` subclasses this plugin provides."""


@hookspec
def disentangle_register_metrics() -> list[Metric]:
    """Return the :class:`~disentangle.metrics.Metric` objects this plugin provides."""


@hookspec
def disentangle_before_run(config: RunConfig, run_id: str) -> None:
    """Called once the run is set up, before its first training step (also on resume)."""


@hookspec
def disentangle_after_eval(run_id: str, step: int, scores: dict[str, Any]) -> None:
    """Called after every evaluation with the scores that were logged."""
