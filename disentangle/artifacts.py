"""What a run records besides its losses: evaluations, pictures and the scores file."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from disentangle import pictures
from disentangle.evaluation import Evaluation, evaluate
from disentangle.models import Reconstructs, eval_mode
from disentangle.run import Run


def log_evaluation(run: Run, echo: Callable[[str], None],
                   params: dict[str, dict[str, Any]] | None = None,
                   progress: bool = False, logged: dict[str, int] | None = None) -> Evaluation:
    """Score the run's model with its metrics, log ``eval/<score>`` at its step, print the
    scores, and tell the plugins (``disentangle_after_eval``).

    ``params`` overrides metric sampler parameters (metric name -> name -> value). Scores
    the store already holds at this step (``logged``: key -> last logged step; a resumed
    run that stopped after logging its final evaluation) are not logged twice.
    """
    s = run.plan.settings
    result = evaluate(run.model, run.plan.dataset, run.registry.metrics(s.metrics), s.seed,
                      params, progress=progress)
    logged = logged or {}
    fresh = {f"eval/{k}": v for k, v in result.scores.items()
             if logged.get(f"eval/{k}", -1) < run.step}
    if fresh:
        run.tracker.log_metrics(run.run_id, fresh, run.step)
    shown = "  ".join(f"{k} {v:.4f}" for k, v in result.scores.items() if "." not in k)
    echo(f"step {run.step}: {shown or 'no scores'}"
         + "".join(f"\n  {k} skipped: {why}" for k, why in result.skipped.items()))
    run.registry.notify("disentangle_after_eval", run_id=run.run_id, step=run.step,
                        scores=dict(result.scores))
    return result


def log_final(run: Run, result: Evaluation) -> None:
    """The pictures and ``scores.json`` (the final evaluation ``result``) of a finished run."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_pictures(run, folder)
        (folder / "scores.json").write_text(json.dumps({
            "step": run.step, "scores": result.scores, "skipped": result.skipped,
            "seconds": result.seconds, "images_encoded": result.images_encoded,
            "rows_requested": result.rows_requested, "whole_grid": result.grid,
        }, indent=2))
        run.tracker.log_artifacts(run.run_id, folder)


def write_pictures(run: Run, folder: Path) -> None:
    """``samples.png`` (8 x 8 generated images), ``traversals/<code>.png`` and, for a model
    with a decoder, ``reconstructions.png``: two pairs of rows, 8 real images (drawn with
    the run's seed) above their reconstructions."""
    s, model = run.plan.settings, run.model
    generator = torch.Generator().manual_seed(s.seed)
    with eval_mode(model):
        samples = model.generate(64, generator)
        label = f"{s.model} on {s.dataset}, step {run.step}"
        pictures.save_grid(pictures.as_rows(samples, 8), folder / "samples.png",
                           f"samples: {label}")
        if isinstance(model, Reconstructs):
            real, _ = run.plan.dataset.sample(16, np.random.default_rng(s.seed), run.device)
            real = real.float().cpu()
            with run.registry.blame("model", s.model, "reconstruct()"):
                redrawn = model.reconstruct(real).float().cpu()
            pairs = torch.stack([real.view(2, 8, *real.shape[1:]),
                                 redrawn.view(2, 8, *real.shape[1:])], dim=1)
            pictures.save_grid(pairs.flatten(0, 1), folder / "reconstructions.png",
                               f"real (rows 1, 3) and reconstructed (rows 2, 4): {label}")
        with run.registry.blame("model", s.model, "traversals()"):
            traversals = model.traversals(generator)
            for name in traversals:
                pictures.check_file_name(name)
        for name, images in traversals.items():
            pictures.save_grid(images, folder / "traversals" / f"{name}.png",
                               f"{name} (varies along each row): {label}")
