"""A run's configuration in every form it is stored in, made from the typed configs and read
back into them.

In memory a run has one :class:`~disentangle.config.RunConfig` and one typed model config
(the model's ``Config`` dataclass). Everything else is made here:

* the **record**: plain data (``config.yaml``, and JSON text inside checkpoints): every run
  setting, ``metrics`` as a list and ``params`` as a mapping of every model option;
* the **MLflow params**: flat strings, ``model.<option>`` for the model's options.

:func:`to_record` / :func:`from_record` and :func:`to_params` / :func:`from_params` are
inverse pairs: a round trip gives back equal configs.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from disentangle import config as cfg
from disentangle.config import RunConfig

#: the prefix of model options among the flat MLflow params
MODEL_PREFIX = "model."


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def to_record(settings: RunConfig, model_config: Any) -> dict[str, Any]:
    """The run's configuration as plain data (lists for tuples, ``params`` last)."""
    record = {k: _plain(v) for k, v in cfg.to_dict(settings).items()}
    record["params"] = {k: _plain(v) for k, v in cfg.to_dict(model_config).items()}
    return record


def settings_of(record: dict[str, Any]) -> RunConfig:
    """The run settings of a record (its model options are read by :func:`from_record`)."""
    return cfg.instantiate(RunConfig, {k: v for k, v in record.items() if k != "params"},
                           "run")


def from_record(record: dict[str, Any], model_cls: type) -> tuple[RunConfig, Any]:
    """The typed run settings and model config of a record (``model_cls`` is the record's
    model); a record that is not valid for them raises UsageError."""
    return settings_of(record), cfg.instantiate(model_cls.Config, record.get("params") or {},
                                                record.get("model", "model"))


def to_yaml(settings: RunConfig, model_config: Any) -> str:
    """The record as ``config.yaml`` text."""
    return yaml.safe_dump(to_record(settings, model_config), sort_keys=False)


def to_json(settings: RunConfig, model_config: Any) -> str:
    """The record as JSON text (how checkpoints carry it: a plain string loads safely)."""
    return json.dumps(to_record(settings, model_config), sort_keys=True)


def from_json(text: str) -> dict[str, Any]:
    """The record inside a checkpoint."""
    return json.loads(text)


def _flat(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def to_params(settings: RunConfig, model_config: Any) -> dict[str, str]:
    """Every setting as flat MLflow params: run settings by name, ``model.<option>``."""
    flat = {k: _flat(v) for k, v in cfg.to_dict(settings).items()}
    flat.update({MODEL_PREFIX + k: _flat(v) for k, v in cfg.to_dict(model_config).items()})
    return flat


def from_params(params: dict[str, str], model_cls: type) -> tuple[RunConfig, Any]:
    """The typed configs of flat MLflow params written by :func:`to_params`."""
    model = {k[len(MODEL_PREFIX):]: v for k, v in params.items() if k.startswith(MODEL_PREFIX)}
    run = {k: v for k, v in params.items() if not k.startswith(MODEL_PREFIX)}
    run_values = cfg.parse_assignments(RunConfig, run, "run")
    model_values = cfg.parse_assignments(model_cls.Config, model, run.get("model", "model"))
    return (cfg.instantiate(RunConfig, run_values, "run"),
            cfg.instantiate(model_cls.Config, model_values, run.get("model", "model")))
