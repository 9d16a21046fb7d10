"""Benchmark suites: many runs described in one YAML file, run once each, resumable.

A suite file lists models with hyper-parameter grids, datasets and seeds::

    name: vae_smoke
    description: Two VAEs, two seeds, a few steps each.
    datasets: [dsprites]
    seeds: [0, 1]
    steps: 200                  # optional; any run setting may be given here...
    metrics: [mig, dci]
    runs:
      - model: beta_vae
        grid: {beta: [1, 4]}    # every combination of these values
      - model: factor_vae
        set: {gamma: 10}        # fixed hyper-parameters
        steps: 400              # ...or per model

It expands into one :class:`RunSpec` per (model entry, grid point, dataset, seed). Each spec
has a key derived from its settings; the runs of a suite carry the tags
``disentangle.suite`` and ``disentangle.suite.key`` and the MLflow parent run of the suite,
so a rerun of the same suite skips finished runs, resumes interrupted ones, and the MLflow
UI shows the suite as one group.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from disentangle import config as cfg
from disentangle.config import RunConfig
from disentangle.device import check_device_name
from disentangle.errors import UsageError
from disentangle.registry import Registry

#: where ``disentangle bench NAME`` looks for ``NAME.yaml`` (relative to the working folder)
SUITE_FOLDER = Path("benchmarks") / "suites"
#: run settings a suite may give (for all runs or per model entry)
RUN_KEYS = ("steps", "batch_size", "eval_every", "checkpoint_every", "log_every", "metrics",
            "device", "data_dir", "data_options")
SUITE_TAG, KEY_TAG, PARENT_TAG = "disentangle.suite", "disentangle.suite.key", "mlflow.parentRunId"


@dataclass(frozen=True)
class RunSpec:
    """One run of a suite: a run config and the ``--set`` values of its grid point."""

    config: RunConfig
    overrides: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        """A short stable digest of everything that defines the run."""
        record = {**cfg.to_dict(self.config), "overrides": list(map(list, self.overrides))}
        record.pop("device", None)  # the same run, wherever it trains
        if not record.get("data_options"):  # keys from before the option existed stay
            record.pop("data_options", None)
        text = json.dumps(record, sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        c = self.config
        settings = " ".join(f"{k}={v}" for k, v in self.overrides)
        return f"{c.model} on {c.dataset} seed {c.seed}" + (f" ({settings})" if settings else "")


@dataclass
class Suite:
    """A parsed suite file."""

    name: str
    description: str
    experiment: str
    specs: list[RunSpec] = field(default_factory=list)


#: bounds on a suite file, which is untrusted input: its size in bytes, the number of YAML
#: nodes it holds once its aliases are expanded, how deeply it nests, and the runs it makes
MAX_BYTES = 1_000_000
MAX_NODES = 100_000
MAX_DEPTH = 20
MAX_RUNS = 10_000

#: what a suite's name may hold: it is matched inside tracking-store filters and file names
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def check_name(name: str) -> str:
    """``name`` if it can name a suite; else a UsageError saying what a name may hold."""
    if not _NAME.fullmatch(name):
        raise UsageError(f"suite name {name!r}: use 1 to 100 letters, digits, '_', '.' or '-'")
    return name


def find_suite(name: str) -> Path:
    """A suite file by path, or by name in ``benchmarks/suites/``."""
    path = Path(name)
    if path.is_file():
        return path
    candidate = SUITE_FOLDER / f"{name}.yaml"
    if candidate.is_file():
        return candidate
    known = sorted(p.stem for p in SUITE_FOLDER.glob("*.yaml")) if SUITE_FOLDER.is_dir() else []
    raise UsageError(f"no suite file {name!r} (nor {candidate}); suites here: "
                     f"{', '.join(known) or 'none'}")


_SCALAR = (str, int, float, bool)


def _as_list(value: Any, what: str) -> list[Any]:
    """``value`` as a non-empty list of scalars or lists of scalars."""
    values = value if isinstance(value, list) else [value]
    for item in values:
        if not (isinstance(item, _SCALAR) or isinstance(item, list)
                and all(isinstance(x, _SCALAR) for x in item)):
            raise UsageError(f"{what} must be a value or a list of values, not {item!r}")
    if not values:
        raise UsageError(f"{what} is an empty list: it would make no runs")
    return values


def _read(text: str, name: str) -> Any:
    """The YAML document of a suite, refused when its aliases expand past :data:`MAX_NODES`
    nodes or it nests deeper than :data:`MAX_DEPTH` (checked on the node graph, before
    anything is built from it)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise UsageError(f"suite {name}: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(f"suite {name}: not valid YAML: {problem}{where}") from None
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise UsageError(f"suite {name}: nested more than {MAX_DEPTH} levels deep")
        if id(node) not in sizes:
            children = (node.value if isinstance(node, yaml.SequenceNode) else
                        [n for pair in node.value for n in pair]
                        if isinstance(node, yaml.MappingNode) else [])
            sizes[id(node)] = 1 + sum(size(child, depth + 1) for child in children)
            if sizes[id(node)] > MAX_NODES:
                raise UsageError(f"suite {name}: its aliases expand to more than "
                                 f"{MAX_NODES:,} values")
        return sizes[id(node)]

    if root is None:
        return None
    size(root, 0)
    return yaml.safe_load(text)


def _text(value: Any) -> str:
    """A YAML value as the text ``--set`` would take (lists become comma-separated)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ",".join(map(_text, value))
    return str(value)


def _run_settings(block: dict[str, Any], where: str) -> dict[str, Any]:
    settings = {k: block[k] for k in RUN_KEYS if k in block}
    if "device" in settings:
        try:
            check_device_name(settings["device"])
        except UsageError as exc:
            raise UsageError(f"{where}: {exc}") from None
    if "metrics" in settings:
        settings["metrics"] = tuple(_as_list(settings["metrics"], f"{where}: metrics"))
    try:
        typed = cfg.parse_assignments(RunConfig, {k: _text(v) for k, v in settings.items()},
                                      "run")
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None
    return typed


def parse_suite(text: str, name: str) -> Suite:
    """Expand a suite's YAML text into run specs; malformed files raise UsageError."""
    data = _read(text, name)
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list) or not data["runs"]:
        raise UsageError(f"suite {name}: expected a mapping with a non-empty 'runs' list")
    allowed = {"name", "description", "experiment", "datasets", "seeds", "runs", *RUN_KEYS}
    unknown = set(data) - allowed
    if unknown:
        raise UsageError(f"suite {name}: unknown keys {sorted(unknown)}; allowed: "
                         f"{sorted(allowed)}")
    suite_name = check_name(str(data.get("name", name)))
    common = _run_settings(data, f"suite {suite_name}")
    suite = Suite(suite_name, str(data.get("description", "")),
                  str(data.get("experiment", f"suite-{suite_name}")))
    for number, entry in enumerate(data["runs"], 1):
        where = f"suite {suite_name}, run entry {number}"
        if not isinstance(entry, dict) or "model" not in entry:
            raise UsageError(f"{where}: expected a mapping with a 'model'")
        extra = set(entry) - {"model", "grid", "set", "datasets", "seeds", *RUN_KEYS}
        if extra:
            raise UsageError(f"{where}: unknown keys {sorted(extra)}")
        grid = entry.get("grid") or {}
        fixed = entry.get("set") or {}
        if not isinstance(grid, dict) or not isinstance(fixed, dict):
            raise UsageError(f"{where}: 'grid' and 'set' must be mappings")
        for key in [*grid, *fixed]:
            if not isinstance(key, str):
                raise UsageError(f"{where}: {key!r} is not an option name")
        for key, value in fixed.items():
            _as_list(value, f"{where}: set {key}")
        settings = {**common, **_run_settings(entry, where)}
        datasets = _as_list(entry.get("datasets", data.get("datasets", ["dsprites"])),
                            f"{where}: datasets")
        seeds = _as_list(entry.get("seeds", data.get("seeds", [0])), f"{where}: seeds")
        names = list(grid)
        axes = [_as_list(grid[n], f"{where}: grid {n}") for n in names]
        count = len(datasets) * len(seeds) * math.prod(len(axis) for axis in axes)
        if len(suite.specs) + count > MAX_RUNS:
            raise UsageError(f"suite {suite_name}: more than {MAX_RUNS:,} runs "
                             f"({where} alone makes {count:,})")
        for values in itertools.product(*axes):
            overrides = {**{k: _text(v) for k, v in fixed.items()},
                         **{n: _text(v) for n, v in zip(names, values)}}
            for dataset, seed in itertools.product(datasets, seeds):
                if not isinstance(seed, int):
                    raise UsageError(f"{where}: seeds must be integers, not {seed!r}")
                try:
                    config = replace(RunConfig(model=str(entry["model"]), dataset=str(dataset),
                                               seed=seed, experiment=suite.experiment),
                                     **settings)
                except ValueError as exc:
                    raise UsageError(f"{where}: {exc}") from None
                suite.specs.append(RunSpec(config, tuple(sorted(overrides.items()))))
    return suite


def _text_of(path: Path) -> str:
    """A suite file's text: at most :data:`MAX_BYTES`, UTF-8."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read suite {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise UsageError(f"suite {path} is larger than {MAX_BYTES:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"suite {path} is not UTF-8 text (byte {exc.start})") from None


def load_suite(name: str, registry: Registry) -> Suite:
    """Read, expand and validate a suite: every run's settings are checked before any runs."""
    from disentangle.plan import plan_new

    path = find_suite(name)
    suite = parse_suite(_text_of(path), path.stem)
    for spec in suite.specs:
        try:
            plan_new(spec.config, dict(spec.overrides), registry)
        except UsageError as exc:
            raise UsageError(f"suite {suite.name}, {spec.label}: {exc}") from None
    keys = [spec.key for spec in suite.specs]
    if len(set(keys)) != len(keys):
        raise UsageError(f"suite {suite.name} lists the same run more than once")
    return suite
