"""A run handle: one logged run, its model at a step, and where its checkpoint and lock live.

Every caller (the command line, ``evaluate``, the suite executors, the benchmarks) gets a
:class:`Run` from one of two functions, and it is complete from the start:

* :func:`new_run` opens a new run in the tracking store and records its configuration;
* :func:`open_run` reopens a logged run at its latest checkpoint, to evaluate or continue it.

Training it is :func:`disentangle.loop.train`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from disentangle import checkpoints, record
from disentangle.checkpoints import RunLock
from disentangle.device import resolve_device
from disentangle.errors import NoCheckpoint, UsageError
from disentangle.models import Model
from disentangle.plan import Plan, plan_stored
from disentangle.provenance import run_tags
from disentangle.registry import Registry
from disentangle.tracking import Tracker, run_cache

#: the checkpoint's path among a run's artifacts
CHECKPOINT = "checkpoints/last.pt"


@dataclass
class Run:
    """A logged run and its model at ``step``.

    ``checkpoint`` is the local checkpoint file: in the run's artifact folder when the
    artifact store is on this file system, else in the run's cache folder, and then also
    uploaded after each write (``upload``). ``lock`` is held while the run trains.
    ``resumed`` says whether the run existed before this handle. ``window`` holds the
    training losses of the steps since the last logged mean (checkpointed with the model, so a
    resumed run logs the same means as an uninterrupted one).
    """

    plan: Plan
    model: Model
    device: torch.device
    registry: Registry
    tracker: Tracker
    run_id: str
    step: int
    checkpoint: Path
    upload: bool
    lock: RunLock
    resumed: bool
    window: dict[str, list[float]] = field(default_factory=dict)

    def save_checkpoint(self) -> None:
        """Atomically write the checkpoint (and upload it when the store is remote)."""
        checkpoints.save(self.checkpoint, {
            "step": self.step,
            "config": record.to_json(self.plan.settings, self.plan.model_config),
            "model": self.model.checkpoint_state(),
            "window": self.window,
        })
        if self.upload:
            self.tracker.log_artifact(self.run_id, self.checkpoint, "checkpoints")


def build_model(plan: Plan, device: torch.device) -> Model:
    """The model, initialised from the run's seed (so two runs of one seed start equal)."""
    torch.manual_seed(plan.settings.seed)
    try:
        return plan.model_cls(plan.model_config, plan.dataset, device)
    except Exception as exc:
        raise UsageError(f"model {plan.settings.model!r} cannot be built with these "
                         f"hyper-parameters on {plan.settings.dataset!r}: "
                         f"{type(exc).__name__}: {exc}") from None


def _handle(plan: Plan, model: Model, device: torch.device, registry: Registry,
            tracker: Tracker, run_id: str, step: int, resumed: bool) -> Run:
    local = tracker.local_artifact_dir(run_id)
    return Run(plan, model, device, registry, tracker, run_id, step,
               (local or run_cache(run_id)) / CHECKPOINT, local is None,
               RunLock(run_cache(run_id) / "lock"), resumed)


def new_run(plan: Plan, registry: Registry, tracker: Tracker,
            tags: dict[str, str] | None = None, echo: Callable[[str], None] = print) -> Run:
    """Build the model of a planned run and open its MLflow run (not trained yet): tags,
    flat params and ``config.yaml`` are recorded."""
    s = plan.settings
    device = resolve_device(s.device)
    model = build_model(plan, device)
    run_id = tracker.start_run(s.experiment or s.dataset, f"{s.model}-{s.dataset}-{s.seed}",
                               {**run_tags(plan, registry, device), **(tags or {})})
    tracker.log_params(run_id, record.to_params(s, plan.model_config))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(record.to_yaml(s, plan.model_config))
        tracker.log_artifact(run_id, path)
    echo(f"run {run_id}: {s.model} on {s.dataset}, seed {s.seed}, {s.steps} steps of "
         f"batch {s.batch_size} on {device}")
    return _handle(plan, model, device, registry, tracker, run_id, 0, resumed=False)


def open_run(run_id: str, registry: Registry, tracker: Tracker, **changes: Any) -> Run:
    """Reopen logged run ``run_id`` at its latest checkpoint, with ``changes`` to its
    settings (those given: ``steps`` to extend it, ``device``, ``metrics``)."""
    state = load_checkpoint(tracker, run_id)
    plan = plan_stored(record.from_json(state["config"]), registry, **changes)
    device = resolve_device(plan.settings.device)
    model = build_model(plan, device)
    model.load_checkpoint_state(state["model"])
    run = _handle(plan, model, device, registry, tracker, run_id, int(state["step"]),
                  resumed=True)
    run.window = {k: [float(v) for v in values] for k, values in state.get("window", {}).items()}
    return run


def load_checkpoint(tracker: Tracker, run_id: str) -> dict[str, Any]:
    """The latest checkpoint of a run: local copy first, else downloaded from the store."""
    tracker.get_run(run_id)
    local = tracker.local_artifact_dir(run_id)
    candidates = [local / CHECKPOINT] if local is not None else []
    candidates.append(run_cache(run_id) / CHECKPOINT)
    for path in candidates:
        if path.is_file():
            return checkpoints.load(path)
    with tempfile.TemporaryDirectory() as tmp:
        path = tracker.download(run_id, CHECKPOINT, Path(tmp))
        if path is not None:
            return checkpoints.load(path)
    raise NoCheckpoint(f"run {run_id} has no checkpoint to resume from")
