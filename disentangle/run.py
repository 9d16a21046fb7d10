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
from disentangle.config import STEP_LIMIT
from disentangle.device import check_batch_fits, resolve_device
from disentangle.errors import DivergenceError, NoCheckpoint, UsageError, first_line
from disentangle.lease import RunLease, settle
from disentangle.models import Model
from disentangle.plan import Plan, plan_stored
from disentangle.precision import check_precision
from disentangle.provenance import run_tags
from disentangle.registry import Registry
from disentangle.sampling import TrainingSampler
from disentangle.tracking import Tracker, run_cache

#: the checkpoint's path among a run's artifacts
CHECKPOINT = "checkpoints/last.pt"
#: the run tag holding the run's record (as JSON), set when the run is created
CONFIG_TAG = "disentangle.config"


@dataclass
class Run:
    """A logged run and its model at ``step``.

    ``checkpoint`` is the local checkpoint file: in the run's artifact folder when the
    artifact store is on this file system, else in the run's cache folder, and then also
    uploaded after each write (``upload``). ``lock`` is held while the run trains (see
    :mod:`disentangle.lease`).
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
    lock: RunLease
    resumed: bool
    window: dict[str, list[float]] = field(default_factory=dict)
    #: the step of the checkpoint kept for this run (completely written), None while it has
    #: none
    kept: int | None = None
    #: the step of the checkpoint last handed to the writer (being written, or kept)
    saved: int | None = None
    writer: checkpoints.Writer = field(default_factory=checkpoints.Writer)

    def save_checkpoint(self) -> None:
        """Write the checkpoint of this step atomically, in the background (see
        :class:`checkpoints.Writer`); when the store is remote, wait for it and upload it.

        A state holding NaN or infinity is never written: it raises DivergenceError and the
        checkpoint of an earlier step stays.
        """
        state = self.model.checkpoint_state()
        bad = checkpoints.nonfinite(state)
        if bad:
            raise DivergenceError.state(bad, self.step)
        self._written(self.writer.submit(self.checkpoint, {
            "step": self.step,
            "config": record.to_json(self.plan.settings, self.plan.model_config),
            "model": state,
            "window": self.window,
        }, self.step))
        self.saved = self.step
        if self.upload:
            self.wait_checkpoint()

    def wait_checkpoint(self) -> None:
        """Wait until the checkpoint being written is on disk (raising the error its write
        met); it is then the one kept."""
        self._written(self.writer.wait())

    def _written(self, step: int | None) -> None:
        if step is not None:
            self.kept = step
            if self.upload:
                self.tracker.log_artifact(self.run_id, self.checkpoint, "checkpoints")


def build_model(plan: Plan, device: torch.device) -> Model:
    """The model, initialised from the run's seed (so two runs of one seed start equal),
    once the batch is known to fit the device's memory and the precision to run there; set
    to that precision, its weights channels-last where the model asks for it, and its
    networks compiled where the run asks for it."""
    s = plan.settings
    check_batch_fits(s.batch_size, tuple(plan.dataset.image_shape), device)
    check_precision(s.precision, device)
    torch.manual_seed(s.seed)
    try:
        model = plan.model_cls(plan.model_config, plan.dataset, device)
    except Exception as exc:
        raise UsageError(f"model {s.model!r} cannot be built with these hyper-parameters on "
                         f"{s.dataset!r}: {type(exc).__name__}: {first_line(exc)}") from None
    model.set_precision(s.precision)
    if model.channels_last:
        model.to(memory_format=torch.channels_last)
    if s.compile:
        model.compile_networks()
    return model


def _handle(plan: Plan, model: Model, device: torch.device, registry: Registry,
            tracker: Tracker, run_id: str, step: int, resumed: bool) -> Run:
    local = tracker.local_artifact_dir(run_id)
    return Run(plan, model, device, registry, tracker, run_id, step,
               (local or run_cache(run_id)) / CHECKPOINT, local is None,
               RunLease(tracker, run_id, run_cache(run_id) / "lock"), resumed)


def new_run(plan: Plan, registry: Registry, tracker: Tracker,
            tags: dict[str, str] | None = None, echo: Callable[[str], None] = print) -> Run:
    """Build the model of a planned run and open its MLflow run (not trained yet): tags
    (the record among them), flat params and ``config.yaml`` are recorded."""
    s = plan.settings
    device = resolve_device(s.device)
    model = build_model(plan, device)  # first: a model or batch that cannot be made leaves no run
    # the record travels in a tag of the new run, so a run killed at any moment after it
    # exists can be started again from it
    run_id = tracker.start_run(s.experiment or s.dataset, f"{s.model}-{s.dataset}-{s.seed}",
                               {**run_tags(plan, registry, device), **(tags or {}),
                                CONFIG_TAG: record.to_json(s, plan.model_config)})
    tracker.log_params(run_id, record.to_params(s, plan.model_config))
    if isinstance(plan.training, TrainingSampler):  # what the data it trains on is
        tracker.log_metrics(run_id, {f"data/{k}": v for k, v in
                                     plan.training.measured(s.seed).items()}, 0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(record.to_yaml(s, plan.model_config))
        tracker.log_artifact(run_id, path)
    mode = "" if s.precision == "fp32" else f" in {s.precision} mixed precision"
    echo(f"run {run_id}: {s.model} on {s.dataset}, seed {s.seed}, {s.steps} steps of "
         f"batch {s.batch_size} on {device}{mode}" + (", compiled" if s.compile else ""))
    return _handle(plan, model, device, registry, tracker, run_id, 0, resumed=False)


def open_run(run_id: str, registry: Registry, tracker: Tracker, restart: bool = False,
             **changes: Any) -> Run:
    """Reopen logged run ``run_id`` at its latest checkpoint, with ``changes`` to its
    settings (those given: ``steps`` to extend it, ``device``, ``metrics``).

    With ``restart``, a run that stopped before writing its first checkpoint is reopened at
    step 0 from the record it was created with: every draw depends on the seed alone, so it
    trains again exactly as it did. A checkpoint that is not what this run's model wrote
    (keys, types, step, tensor shapes) is refused with one line.
    """
    try:
        state = load_checkpoint(tracker, run_id)
    except NoCheckpoint:
        if not restart:
            raise
        stored, step, window, model_state = _stored_config(tracker, run_id), 0, {}, None
    else:
        stored, step, window = _checked(state, run_id)
        model_state = state["model"]
    try:
        plan = plan_stored(stored, registry, **changes)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise UsageError(f"run {run_id}: its stored configuration is not a run record "
                         f"({type(exc).__name__}: {exc})") from None
    device = resolve_device(plan.settings.device)
    model = build_model(plan, device)
    if model_state is not None:
        _load_state(model, model_state, run_id)
    run = _handle(plan, model, device, registry, tracker, run_id, step, resumed=True)
    run.window = window
    run.kept = run.saved = step if model_state is not None else None
    return run


def _stored_config(tracker: Tracker, run_id: str) -> dict[str, Any]:
    """The record the run was created with (NoCheckpoint when it has none)."""
    text = tracker.get_run(run_id).data.tags.get(CONFIG_TAG)
    if text is None:
        raise NoCheckpoint(f"run {run_id} has neither a checkpoint nor a recorded "
                           "configuration to start again from")
    try:
        stored = record.from_json(text)
    except ValueError:
        stored = None
    if not isinstance(stored, dict):
        raise UsageError(f"run {run_id}: its {CONFIG_TAG} tag is not a run record")
    return stored


def _checked(state: dict[str, Any], run_id: str) -> tuple[dict[str, Any], int,
                                                          dict[str, list[float]]]:
    """The record, step and loss window of a checkpoint whose structure is checked."""
    def refuse(problem: str) -> UsageError:
        return UsageError(f"the checkpoint of run {run_id} is not one this program wrote: "
                          f"{problem}")

    missing = [key for key in ("step", "config", "model") if key not in state]
    if missing:
        raise refuse(f"it has no {', '.join(missing)}")
    step = state["step"]
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= STEP_LIMIT:
        raise refuse(f"its step is {step!r}, not a whole number in [0, {STEP_LIMIT:,}]")
    if not isinstance(state["config"], str):
        raise refuse("its config is not JSON text")
    try:
        stored = record.from_json(state["config"])
    except ValueError:
        raise refuse("its config is not JSON text") from None
    if not isinstance(stored, dict):
        raise refuse("its config is not a run record")
    if not isinstance(state["model"], dict):
        raise refuse("its model state is not a mapping")
    bad = checkpoints.nonfinite(state["model"])
    if bad:
        raise refuse(f"its model state holds NaN or infinite values ({bad})")
    window = state.get("window", {})
    if not isinstance(window, dict) or not all(
            isinstance(values, list) and all(isinstance(v, (int, float)) for v in values)
            for values in window.values()):
        raise refuse("its loss window is not lists of numbers")
    return stored, step, {str(k): [float(v) for v in values] for k, values in window.items()}


def _load_state(model: Model, state: dict[str, Any], run_id: str) -> None:
    """Load a checkpoint's model state, refusing one whose tensors do not fit the model."""
    try:
        model.load_checkpoint_state(state)
        for name, optimizer in model.optimizers().items():
            for group in optimizer.param_groups:
                for param in group["params"]:
                    for key, value in optimizer.state.get(param, {}).items():
                        if (isinstance(value, torch.Tensor) and value.dim() > 0
                                and value.shape != param.shape):
                            raise ValueError(f"optimizer {name!r} state {key!r} has shape "
                                             f"{tuple(value.shape)} for a parameter of "
                                             f"shape {tuple(param.shape)}")
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UsageError(f"the checkpoint of run {run_id} does not fit model "
                         f"{model.__class__.__name__}: {type(exc).__name__}: "
                         f"{first_line(exc)}") from None


def load_checkpoint(tracker: Tracker, run_id: str) -> dict[str, Any]:
    """The latest checkpoint of a run: local copy first, else downloaded from the store.

    A run left RUNNING by a process that is gone is closed as KILLED on the way."""
    settle(tracker, tracker.get_run(run_id))
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
