"""The hooks a disentangle plugin may implement.

A plugin is a plain Python module named in the ``disentangle`` entry-point group of its
distribution, for example in ``setup.cfg``::

    [options.entry_points]
    disentangle =
        my_model = my_package.my_model

The module implements any of the hooks below, each decorated with :data:`hookimpl`. The
first-party models, datasets and metrics are registered exactly this way.

How hooks are called: always by pluggy. Several implementations of one hook run in
pluggy's order (the plugin registered last first, ``tryfirst``/``trylast`` honoured), and
hook wrappers (``hookimpl(wrapper=True)``) wrap them as pluggy documents.

* The three register hooks are called once per plugin, when it is registered (on the first
  use of the registry: ``disentangle list``, ``run``...), restricted to that plugin. A
  plugin whose register hook raises, or returns something that is not a list of the right
  kind, is reported by ``disentangle list`` and as a warning by every command, with the
  error; its other hooks and every other plugin keep working. An item whose ``name`` is
  already taken by an earlier plugin is refused the same way: the one registered first is
  kept, and the first-party plugins are registered before any other.
* The event hooks are called during a run. Their return values are ignored. When one
  raises, the run stops and is marked failed, and the error names the plugin whose
  implementation raised.
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

    Called once, when the plugin is registered. Each class carries its registry ``name``
    and a ``Config`` dataclass of hyper-parameters.
    """


@hookspec
def disentangle_register_datasets() -> list[type[FactorDataset]]:
    """Return the :class:`~disentangle.datasets.FactorDataset` subclasses this plugin provides.

    Called once, when the plugin is registered; each class carries its registry ``name``.
    """


@hookspec
def disentangle_register_metrics() -> list[Metric]:
    """Return the :class:`~disentangle.metrics.Metric` objects this plugin provides.

    Called once, when the plugin is registered; each metric carries its registry ``name``.
    """


@hookspec
def disentangle_before_run(config: RunConfig, run_id: str) -> None:
    """Called once the run is opened in the tracking store, before its first training step
    (also when a run is resumed); ``config`` holds the resolved run settings."""


@hookspec
def disentangle_after_eval(run_id: str, step: int, scores: dict[str, Any]) -> None:
    """Called after every evaluation of a training run, once its scores are logged."""
