"""Typed configuration: the run settings, and parsing ``--set key=value`` strings.

Run settings (:class:`RunConfig`) and model hyper-parameters are frozen dataclasses whose
fields carry a ``help`` text in their metadata and which validate themselves in
``__post_init__``. This module turns command-line strings and stored values into those
typed values; :mod:`disentangle.record` turns configs into every stored form and back.

A config class may define a classmethod ``complete(values) -> values`` that fills options
derived from others (for example the layer sizes of a chosen preset) before the dataclass
is built: :func:`instantiate` calls it, so one frozen config holds every resolved value.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable
from typing import Any, Literal, Union

from disentangle.errors import UsageError


def option(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field with a help text (shown by ``disentangle show``)."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple for sequence defaults: configs are immutable")
    return dataclasses.field(default=default, metadata={"help": help}, **kwargs)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """What to train, on what, for how long, and how to evaluate and record it."""

    model: str = option("infogan", "model plugin name")
    dataset: str = option("dsprites", "dataset plugin name")
    seed: int = option(0, "seed for every random draw (training batches, noise, metrics)")
    steps: int = option(0, "training steps; 0 means the model's default schedule")
    batch_size: int = option(64, "training batch size")
    device: str = option("auto", "auto (CUDA when present, else CPU), cpu or cuda[:N]")
    eval_every: int = option(1000, "evaluate every this many steps (and always at the end)")
    checkpoint_every: int = option(250, "write the checkpoint every this many steps")
    log_every: int = option(20, "log training losses every this many steps")
    metrics: tuple[str, ...] = option(("mig", "categorical_accuracy"), "metrics to evaluate")
    precision: Literal["fp32", "bf16", "fp16"] = option(
        "fp32", "training arithmetic: fp32, or mixed precision in bf16 or fp16 (fp16 with "
        "loss scaling; evaluation stays fp32)")
    compile: bool = option(False, "compile each network's forward pass with torch.compile")
    data_dir: str = option("", "folder with the dataset's files, when it uses any")
    data_options: tuple[str, ...] = option(
        (), "how training batches are drawn, KEY=VALUE (correlate=A:B:SIGMA, "
            "holdout=A:B:FRACTION; see disentangle.sampling); evaluation samples the uniform "
            "grid")
    experiment: str = option("", "MLflow experiment; empty means the dataset name")

    def __post_init__(self) -> None:
        for key, low, high in _RANGES:
            value = getattr(self, key)
            if not low <= value <= high:
                raise ValueError(f"{key} must lie in [{low:,}, {high:,}], not {value:,}")


#: the most steps a run (or an interval of it) may have: far past any schedule that can finish
STEP_LIMIT = 10**9
#: the ranges the run settings must lie in: seeds are what numpy and torch can be seeded with
_RANGES = (("seed", 0, 2**63 - 1), ("steps", 0, STEP_LIMIT), ("batch_size", 1, 100_000),
           ("eval_every", 1, STEP_LIMIT), ("checkpoint_every", 1, STEP_LIMIT),
           ("log_every", 1, STEP_LIMIT))


def fields_help(cls: type) -> list[tuple[str, str, Any, str]]:
    """(name, type text, default, help) for every field of a config dataclass."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        rows.append((f.name, _type_text(hints[f.name]), f.default, f.metadata.get("help", "")))
    return rows


def _type_text(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"tuple[{_type_text(typing.get_args(tp)[0])},...]"
    if origin in (Union, types.UnionType):
        return " | ".join(_type_text(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", str(tp))


def parse_value(tp: Any, text: str) -> Any:
    """Parse a command-line string into a value of type ``tp``; raise ValueError if it isn't."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        for choice in choices:
            if str(choice) == text:
                return choice
        raise ValueError(f"expected one of {', '.join(map(str, choices))}")
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if type(None) in typing.get_args(tp) and text.lower() in ("none", ""):
            return None
        return parse_value(args[0], text)
    if origin is tuple:
        item = typing.get_args(tp)[0]
        return tuple(parse_value(item, part.strip()) for part in text.split(",") if part.strip())
    if tp is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError("expected true or false")
    if tp is int:
        return int(text)
    if tp is float:
        value = float(text)
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("expected a finite number")
        return value
    if tp is str:
        return text
    raise ValueError(f"unsupported type {tp!r}")


def coerce(tp: Any, value: Any) -> Any:
    """Check a value read back from JSON/YAML against ``tp`` (lists become tuples)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and str not in options):
            return value if value is None else parse_value(tp, value)
        return coerce(options[0], value)
    if origin is tuple and isinstance(value, (list, tuple)):
        item = typing.get_args(tp)[0]
        return tuple(coerce(item, v) for v in value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and tp is not str:
        return parse_value(tp, value)
    return value


def split_assignments(assignments: Iterable[str]) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; malformed items raise UsageError."""
    result = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set expects key=value, got {item!r}")
        result[key.strip()] = value.strip()
    return result


def _check_key(cls: type, key: str, what: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    if key not in names:
        raise UsageError(f"unknown {what} parameter {key!r}; valid parameters: {', '.join(names)}")
    return hints[key]


def parse_assignments(cls: type, values: dict[str, str], what: str) -> dict[str, Any]:
    """Parse command-line strings for fields of config dataclass ``cls``.

    Unknown keys and ill-typed values raise :class:`UsageError` naming the key, the expected
    type and the valid keys.
    """
    parsed = {}
    for key, text in values.items():
        tp = _check_key(cls, key, what)
        try:
            parsed[key] = parse_value(tp, text)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"bad value {text!r} for {what} parameter {key!r} "
                             f"(type {_type_text(tp)}): {exc}") from None
    return parsed


def instantiate(cls: type, values: dict[str, Any], what: str) -> Any:
    """Build config dataclass ``cls`` from typed or stored (JSON/YAML) values, validated.

    Options missing from ``values`` take their defaults, after ``cls.complete`` (when the
    class has one) has filled the options it derives.
    """
    kwargs = {}
    for key, value in values.items():
        tp = _check_key(cls, key, what)
        try:
            kwargs[key] = coerce(tp, value)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"bad value {value!r} for {what} parameter {key!r}: {exc}") from None
    try:
        complete = getattr(cls, "complete", None)
        return cls(**(complete(kwargs) if complete is not None else kwargs))
    except (ValueError, TypeError) as exc:
        raise UsageError(f"invalid {what} parameters: {exc}") from None


def to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as a plain dict (tuples kept)."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}

