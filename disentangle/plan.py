"""Resolving a run's configuration: names looked up, defaults and overrides applied.

A :class:`Plan` is what a run is built from: its settings, its model's typed config, the
model class and the dataset they name. A new run is planned from settings and ``--set``
overrides (:func:`plan_new`); a logged run from its stored record (:func:`plan_stored`),
which already lists every option, so nothing is resolved again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from disentangle import config as cfg
from disentangle import record
from disentangle.config import RunConfig
from disentangle.datasets import FactorDataset
from disentangle.errors import UsageError
from disentangle.models import Model
from disentangle.registry import Registry
from disentangle.sampling import TrainingSampler, parse_options


@dataclass(frozen=True)
class Plan:
    """A run's resolved configuration and the classes and dataset it names."""

    settings: RunConfig
    model_config: Any
    model_cls: type[Model]
    dataset: FactorDataset

    @cached_property
    def training(self) -> FactorDataset | TrainingSampler:
        """Where training batches come from (its ``sample``): the dataset, or a sampler
        over it when the run's ``data_options`` correlate factors or hold some out."""
        correlations, held_out = parse_options(self.settings.data_options, self.dataset)
        if not correlations and held_out is None:
            return self.dataset
        return TrainingSampler(self.dataset, correlations, held_out)

    def record(self) -> dict[str, Any]:
        """The configuration as plain data (see :mod:`disentangle.record`)."""
        return record.to_record(self.settings, self.model_config)


def _dataset(settings: RunConfig, registry: Registry) -> FactorDataset:
    for name in settings.metrics:
        registry.metric(name)
    return registry.dataset(settings.dataset)(data_dir=settings.data_dir or None)


def plan_new(settings: RunConfig, overrides: dict[str, str], registry: Registry) -> Plan:
    """A new run: the model's defaults, then its dataset-specific defaults, then the
    ``--set`` ``overrides``; ``steps`` 0 becomes the model's schedule on the dataset."""
    model_cls = registry.model(settings.model)
    dataset = _dataset(settings, registry)
    values = model_cls.dataset_defaults(dataset)
    values.update(cfg.parse_assignments(model_cls.Config, overrides, settings.model))
    model_config = cfg.instantiate(model_cls.Config, values, settings.model)
    settings = replace(settings, steps=settings.steps or model_cls.default_steps_for(dataset))
    plan = Plan(settings, model_config, model_cls, dataset)
    plan.training  # noqa: B018 (data options are checked before the run exists)
    return plan


def plan_stored(stored: dict[str, Any], registry: Registry, **changes: Any) -> Plan:
    """A logged run from its record, with ``changes`` to its settings (those given)."""
    model_cls = registry.model(stored.get("model", ""))
    settings, model_config = record.from_record(stored, model_cls)
    given = {k: v for k, v in changes.items() if v}
    try:
        settings = replace(settings, **given)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return Plan(settings, model_config, model_cls, _dataset(settings, registry))
