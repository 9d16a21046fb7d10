"""The training loop: one model on one dataset and one device, from scratch or a checkpoint.

Every random draw of step ``t`` is seeded from ``(seed, t)`` alone, so a run resumed from the
checkpoint of step ``t`` continues exactly as the uninterrupted run would have (on CPU, bit
for bit). The loop itself is deliberately plain: sample a batch, take a step, log, checkpoint,
evaluate.
"""

from __future__ import annotations

import json
import math
import os
import platform
import signal
import subprocess
import tempfile
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from tqdm import tqdm

import disentangle
from disentangle import checkpoints, pictures
from disentangle import config as cfg
from disentangle.config import RunConfig
from disentangle.datasets import FactorDataset
from disentangle.errors import DivergenceError, NoCheckpoint, PluginError, UsageError
from disentangle.evaluation import Evaluation, evaluate
from disentangle.models import Model, eval_mode
from disentangle.registry import Registry
from disentangle.tracking import Tracker, run_cache

CHECKPOINT = "checkpoints/last.pt"


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; an explicit choice must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device {name!r}; use auto, cpu or cuda[:N]") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(
                f"--device {name}: CUDA is not available here (PyTorch {torch.__version__}, "
                f"CUDA build: {torch.version.cuda or 'none'}); use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
    elif device.type not in ("cpu", "mps"):
        raise UsageError(f"unsupported device {name!r}; use auto, cpu or cuda[:N]")
    return device


def seed_step(seed: int, step: int) -> np.random.Generator:
    """Seed torch for step ``step`` and return that step's numpy generator."""
    torch.manual_seed((seed * 1_000_003 + step) % (1 << 63))
    return np.random.default_rng([seed, step])


@dataclass
class Setup:
    """A run's resolved configuration and the objects built from it."""

    config: RunConfig
    dataset: FactorDataset
    model_cls: type[Model]
    model_config: Any


def prepare(config: RunConfig, overrides: dict[str, str], registry: Registry) -> Setup:
    """Resolve names, defaults and ``--set`` overrides into a complete, validated config.

    For a new run the model's parameters are its defaults, then the dataset-specific defaults,
    then ``overrides``. A stored config (resume) already lists every parameter.
    """
    model_cls = registry.model(config.model)
    dataset_cls = registry.dataset(config.dataset)
    for name in config.metrics:
        registry.metric(name)
    if config.steps < 0 or config.batch_size < 1:
        raise UsageError("--steps must be >= 0 and --batch-size >= 1")
    for key in ("eval_every", "checkpoint_every", "log_every"):
        if getattr(config, key) < 1:
            raise UsageError(f"{key} must be >= 1")
    dataset = dataset_cls(data_dir=config.data_dir or None)
    params = dict(config.params) or model_cls.dataset_defaults(dataset)
    params.update(cfg.parse_assignments(model_cls.Config, overrides, config.model))
    model_config = cfg.instantiate(model_cls.Config, params, config.model)
    config = replace(config, steps=config.steps or model_cls.default_steps_for(dataset),
                     params=tuple(cfg.to_dict(model_config).items()))
    return Setup(config, dataset, model_cls, model_config)


def build_model(setup: Setup, device: torch.device) -> Model:
    """The model, initialised from the run's seed (so two runs of one seed start equal)."""
    torch.manual_seed(setup.config.seed)
    try:
        return setup.model_cls(setup.model_config, setup.dataset, device)
    except Exception as exc:
        raise UsageError(f"model {setup.config.model!r} cannot be built with these "
                         f"hyper-parameters on {setup.config.dataset!r}: "
                         f"{type(exc).__name__}: {exc}") from None


@dataclass
class RunResult:
    """How a run ended and what it scored."""

    run_id: str
    status: str
    step: int
    scores: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


class _StopRequest:
    """Turns the first Ctrl-C into a request to stop cleanly after the current step."""

    def __init__(self) -> None:
        self.requested = False

    @contextmanager
    def installed(self) -> Iterator[None]:
        def handler(signum: int, frame: Any) -> None:
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True

        try:
            previous = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread: leave Ctrl-C as it is
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(disentangle.__file__).parent, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


class Runner:
    """Executes one run: training loop, checkpoints, evaluations, pictures and tracking."""

    def __init__(self, setup: Setup, registry: Registry, tracker: Tracker, device: torch.device,
                 echo: Callable[[str], None] = print, progress: bool = True):
        self.setup, self.config = setup, setup.config
        self.registry, self.tracker, self.device = registry, tracker, device
        self.echo, self.progress = echo, progress
        self.model = build_model(setup, device)
        self.step = 0
        self.run_id = ""
        self.checkpoint_path = Path()
        self.upload_checkpoints = False
        self.lock: checkpoints.RunLock | None = None
        self.last_evaluation = Evaluation()

    # -- set-up ------------------------------------------------------------------------------

    def start(self, extra_tags: dict[str, str] | None = None) -> str:
        """Open a new MLflow run and record the resolved config; returns the run id."""
        c = self.config
        models, datasets = self.registry.entries["model"], self.registry.entries["dataset"]
        tags = {
            "disentangle.version": disentangle.__version__,
            "torch.version": torch.__version__,
            "device": str(self.device),
            "host.python": platform.python_version(),
            "host.name": platform.node(),
            "host.pid": str(os.getpid()),
            "model.distribution": models[c.model].distribution,
            "dataset.distribution": datasets[c.dataset].distribution,
        }
        commit = _git_commit()
        if commit:
            tags["mlflow.source.git.commit"] = commit
        source = getattr(self.setup.dataset, "source", None)  # e.g. renderer or a file
        if source:
            tags["dataset.source"] = str(source)
        tags.update(extra_tags or {})
        self.run_id = self.tracker.start_run(c.experiment or c.dataset,
                                             f"{c.model}-{c.dataset}-{c.seed}", tags)
        self.tracker.log_params(self.run_id, cfg.flatten(c))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "config.yaml"
            path.write_text(yaml.safe_dump(self.config_record(), sort_keys=False))
            self.tracker.log_artifact(self.run_id, path)
        self._locate_checkpoint()
        self.lock.acquire()
        return self.run_id

    def config_record(self) -> dict[str, Any]:
        """The resolved config as plain data (what ``config.yaml`` and checkpoints hold)."""
        record = cfg.to_dict(self.config)
        record["metrics"] = list(self.config.metrics)
        record["params"] = {k: list(v) if isinstance(v, tuple) else v
                            for k, v in self.config.params}
        return record

    def attach(self, run_id: str, state: dict[str, Any]) -> None:
        """Take over run ``run_id`` at its checkpoint ``state`` (to evaluate or continue it)."""
        self.run_id = run_id
        self.model.load_checkpoint_state(state["model"])
        self.step = int(state["step"])
        self._locate_checkpoint()

    def resume(self, run_id: str, state: dict[str, Any]) -> None:
        """Continue run ``run_id`` from a loaded checkpoint ``state``."""
        self.attach(run_id, state)
        self.lock.acquire()
        self.tracker.reopen(run_id)

    def _locate_checkpoint(self) -> None:
        local = self.tracker.local_artifact_dir(self.run_id)
        self.upload_checkpoints = local is None
        self.checkpoint_path = (local or run_cache(self.run_id)) / CHECKPOINT
        self.lock = checkpoints.RunLock(run_cache(self.run_id) / "lock")

    # -- the loop ----------------------------------------------------------------------------

    def train(self) -> RunResult:
        """Train to ``config.steps``, evaluate, and close the run (also on Ctrl-C or NaN)."""
        c, stop = self.config, _StopRequest()
        started = time.perf_counter()
        status = "FAILED"
        try:
            self.registry.notify("disentangle_before_run", config=c, run_id=self.run_id)
            with stop.installed():
                self._loop(stop)
            if stop.requested:
                status = "KILLED"
                self.save_checkpoint()
                self.echo(f"\ninterrupted: checkpoint saved at step {self.step}; continue with "
                          f"`disentangle run --resume {self.run_id}`")
            else:
                self.finish()
                status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            self.echo(f"\ninterrupted again: kept the checkpoint of an earlier step; continue "
                      f"with `disentangle run --resume {self.run_id}`")
        except DivergenceError as exc:
            self.echo(f"\nerror: {exc}. The last good checkpoint is kept at "
                      f"{self.checkpoint_path}; lower the learning rates or check the data.")
        except PluginError as exc:
            report = self.checkpoint_path.parent.parent / "error.txt"
            report.parent.mkdir(parents=True, exist_ok=True)
            report.write_text(traceback.format_exc())
            self.echo(f"\nerror: {exc}\nThe run is marked failed; its last checkpoint is kept "
                      f"at {self.checkpoint_path}; the full traceback is in {report}.")
        finally:
            self.tracker.end(self.run_id, status)
            if self.lock is not None:
                self.lock.release()
        return RunResult(self.run_id, status, self.step, self.last_evaluation.scores,
                         self.last_evaluation.skipped, time.perf_counter() - started)

    def _loop(self, stop: _StopRequest) -> None:
        c = self.config
        window: dict[str, list[float]] = defaultdict(list)
        bar = tqdm(total=c.steps, initial=self.step, disable=not self.progress,
                   desc=f"{c.model} on {c.dataset}", unit="step", dynamic_ncols=True)
        timed_from, timed_steps = None, 0
        with bar:
            while self.step < c.steps and not stop.requested:
                rng = seed_step(c.seed, self.step)
                with self.registry.blame("dataset", c.dataset, f"sample() at step {self.step + 1}"):
                    images, factors = self.setup.dataset.sample(c.batch_size, rng)
                with self.registry.blame("model", c.model, f"train_step() at step {self.step + 1}"):
                    losses = self.model.train_step(images, factors, self.step)
                for key, value in losses.items():
                    if not math.isfinite(value):
                        raise DivergenceError(key, self.step + 1, value)
                    window[key].append(value)
                self.step += 1
                bar.update(1)
                bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items()}, refresh=False)
                timed_from = timed_from or time.perf_counter()
                timed_steps += 1
                if timed_steps == 11:
                    per_step = (time.perf_counter() - timed_from) / 10
                    bar.write(f"estimated training time: {_duration(per_step * c.steps)} for "
                              f"{c.steps} steps ({per_step * 1000:.0f} ms/step on "
                              f"{self.device}), plus evaluation")
                if self.step % c.log_every == 0 or self.step == c.steps:
                    self.tracker.log_metrics(
                        self.run_id, {f"train/{k}": float(np.mean(v)) for k, v in window.items()},
                        self.step)
                    window.clear()
                if self.step % c.checkpoint_every == 0:
                    self.save_checkpoint()
                if self.step % c.eval_every == 0 and self.step < c.steps:
                    self.evaluate(bar.write)

    def save_checkpoint(self) -> None:
        """Atomically write the checkpoint (and upload it when the store is remote)."""
        checkpoints.save(self.checkpoint_path, {
            "step": self.step,
            "config": checkpoints.encode_config(self.config_record()),
            "model": self.model.checkpoint_state(),
        })
        if self.upload_checkpoints:
            self.tracker.log_artifact(self.run_id, self.checkpoint_path, "checkpoints")

    def evaluate(self, echo: Callable[[str], None],
                 params: dict[str, dict[str, Any]] | None = None) -> Evaluation:
        """Score the model with the run's metrics and log ``eval/<score>`` at this step.

        ``params`` overrides metric sampler parameters (metric name -> name -> value).
        """
        result = evaluate(self.model, self.setup.dataset, self.config.metrics, self.registry,
                          self.config.seed, params, progress=self.progress)
        self.last_evaluation = result
        self.tracker.log_metrics(self.run_id, {f"eval/{k}": v for k, v in result.scores.items()},
                                 self.step)
        shown = "  ".join(f"{k} {v:.4f}" for k, v in result.scores.items() if "." not in k)
        echo(f"step {self.step}: {shown or 'no scores'}"
             + "".join(f"\n  {k} skipped: {why}" for k, why in result.skipped.items()))
        self.registry.notify("disentangle_after_eval", run_id=self.run_id, step=self.step,
                             scores=dict(result.scores))
        return result

    def finish(self) -> None:
        """Final checkpoint, evaluation, pictures and scores file."""
        self.save_checkpoint()
        self.echo("evaluating...")
        result = self.evaluate(self.echo)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            self.write_pictures(folder)
            (folder / "scores.json").write_text(json.dumps({
                "step": self.step, "scores": result.scores, "skipped": result.skipped,
                "seconds": result.seconds, "images_encoded": result.images_encoded,
                "rows_requested": result.rows_requested, "whole_grid": result.grid,
            }, indent=2))
            self.tracker.log_artifacts(self.run_id, folder)

    def write_pictures(self, folder: Path) -> None:
        """``samples.png`` (8 x 8 generated images) and ``traversals/<code>.png``."""
        generator = torch.Generator().manual_seed(self.config.seed)
        with eval_mode(self.model):
            samples = self.model.generate(64, generator)
            label = f"{self.config.model} on {self.config.dataset}, step {self.step}"
            pictures.save_grid(pictures.as_rows(samples, 8), folder / "samples.png",
                               f"samples: {label}")
            with self.registry.blame("model", self.config.model, "traversals()"):
                traversals = self.model.traversals(generator)
                for name in traversals:
                    pictures.check_file_name(name)
            for name, images in traversals.items():
                pictures.save_grid(images, folder / "traversals" / f"{name}.png",
                                   f"{name} (varies along each row): {label}")


def config_from_record(record: dict[str, Any]) -> RunConfig:
    """A :class:`RunConfig` from the plain data of ``config.yaml`` or a checkpoint."""
    params = record.get("params") or {}
    config = cfg.instantiate(RunConfig, {**record, "params": ()}, "run")
    return replace(config, params=tuple(params.items()))


def new_run(setup: Setup, registry: Registry, tracker: Tracker,
            tags: dict[str, str] | None = None, echo: Callable[[str], None] = print,
            progress: bool = True) -> Runner:
    """Build the model of a prepared run and open its MLflow run (not trained yet)."""
    job = Runner(setup, registry, tracker, resolve_device(setup.config.device), echo, progress)
    job.start(tags)
    c = job.config
    echo(f"run {job.run_id}: {c.model} on {c.dataset}, seed {c.seed}, {c.steps} steps of "
         f"batch {c.batch_size} on {job.device}")
    return job


def stored_run(tracker: Tracker, run_id: str, registry: Registry,
               **changes: Any) -> tuple[dict[str, Any], Setup]:
    """The checkpoint and resolved setup of a logged run, with ``changes`` to its config."""
    state = load_run_checkpoint(tracker, run_id)
    config = config_from_record(checkpoints.decode_config(state["config"]))
    config = replace(config, **{k: v for k, v in changes.items() if v})
    return state, prepare(config, {}, registry)


def continue_run(run_id: str, state: dict[str, Any], setup: Setup, registry: Registry,
                 tracker: Tracker, echo: Callable[[str], None] = print,
                 progress: bool = True) -> Runner:
    """Reopen a stopped run at its checkpoint ``state`` with the ``setup`` of
    :func:`stored_run` (whose ``steps`` may extend the run)."""
    if setup.config.steps <= int(state["step"]):
        raise UsageError(f"run {run_id} already completed {state['step']} of "
                         f"{setup.config.steps} steps; pass a larger --steps to extend it")
    job = Runner(setup, registry, tracker, resolve_device(setup.config.device), echo, progress)
    job.resume(run_id, state)
    echo(f"resuming run {job.run_id} at step {job.step} of {job.config.steps} on {job.device}")
    return job


def load_run_checkpoint(tracker: Tracker, run_id: str) -> dict[str, Any]:
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


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"
