"""What a run records besides its losses: evaluations, pictures and the scores file."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from disentangle import codefactor, pictures
from disentangle.codefactor import CodeFactor
from disentangle.errors import NotApplicable
from disentangle.evaluation import Evaluation, Observer, evaluate
from disentangle.models import CodeKL, Reconstructs, eval_mode
from disentangle.run import Run
from disentangle.sampling import HeldOutView


def log_evaluation(run: Run, echo: Callable[[str], None],
                   params: dict[str, dict[str, Any]] | None = None,
                   progress: bool = False, logged: dict[str, int] | None = None) -> Evaluation:
    """Score the run's model with its metrics, log ``eval/<score>`` at its step, print the
    scores, and tell the plugins (``disentangle_after_eval``). A run that holds a region of
    combinations out of training also gets its metrics on that region alone
    (``eval/heldout/<score>``, see :mod:`disentangle.sampling`).

    ``params`` overrides metric sampler parameters (metric name -> name -> value). Scores
    the store already holds at this step (``logged``: key -> last logged step; a resumed
    run that stopped after logging its final evaluation) are not logged twice.
    """
    s = run.plan.settings
    metrics = run.registry.metrics(s.metrics)
    observer = Observer(run.model, run.plan.dataset, progress=progress, seed=s.seed)
    result = evaluate(run.model, run.plan.dataset, metrics, s.seed, params,
                      progress=progress, observer=observer)
    held_out = getattr(run.plan.training, "held_out", None)
    if metrics and held_out is not None:  # the same metrics on the combinations not trained
        unseen = evaluate(run.model, HeldOutView(run.plan.dataset, held_out), metrics,
                          s.seed, params, progress=progress)
        result.scores.update({f"heldout/{k}": v for k, v in unseen.scores.items()})
    if metrics:
        result.code_factor = log_code_factor(run, observer)
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


def log_code_factor(run: Run, observer: Observer) -> CodeFactor | None:
    """Log the code-factor matrix of the evaluation's shared sample (the one MIG scores, so
    usually encoded already) as ``eval/<step>/code_factor_mi.json`` and ``.png``; None when
    the representation has no codes or no factor varies."""
    representation, factors = observer.shared_sample(codefactor.SAMPLE)
    try:
        matrix = codefactor.code_factor(representation.codes(), factors,
                                        run.model.code_names(),
                                        run.plan.dataset.factor_names)
    except NotApplicable:
        return None
    s = run.plan.settings
    with tempfile.TemporaryDirectory() as tmp:
        for path in codefactor.save(matrix, Path(tmp),
                                    f"{s.model} on {s.dataset}, step {run.step}"):
            run.tracker.log_artifact(run.run_id, path, f"eval/{run.step}")
    return matrix


def log_final(run: Run, result: Evaluation) -> None:
    """The pictures and ``scores.json`` (the final evaluation ``result``) of a finished run."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_pictures(run, folder, result.code_factor)
        (folder / "scores.json").write_text(json.dumps({
            "step": run.step, "scores": result.scores, "skipped": result.skipped,
            "seconds": result.seconds, "images_encoded": result.images_encoded,
            "rows_requested": result.rows_requested, "whole_grid": result.grid,
        }, indent=2))
        run.tracker.log_artifacts(run.run_id, folder)


def write_pictures(run: Run, folder: Path, matrix: CodeFactor | None = None) -> None:
    """The run's pictures, drawn with its seed:

    - ``samples.png``: 8 x 8 generated images;
    - ``reconstructions.png`` (a model with a decoder): two pairs of rows, 8 real images
      above their reconstructions;
    - ``traversals/<name>.png``: each traversal picture of the model, and for a code's
      traversal ``traversals/<code>.gif``, its columns as frames;
    - ``traversals.png``: one row per code (the first row of its traversal), the codes
      ordered by their KL (a VAE) or otherwise by their largest share of a factor in
      ``matrix`` (the final code-factor matrix), each row labelled with the factor it
      holds most of.
    """
    s, model = run.plan.settings, run.model
    generator = torch.Generator().manual_seed(s.seed)
    label = f"{s.model} on {s.dataset}, step {run.step}"
    with eval_mode(model):
        samples = model.generate(64, generator)
        pictures.save_grid(pictures.as_rows(samples, 8), folder / "samples.png",
                           f"samples: {label}")
        real = None
        if isinstance(model, (Reconstructs, CodeKL)):
            real, _ = run.plan.dataset.sample(256, np.random.default_rng(s.seed), run.device)
        if isinstance(model, Reconstructs):
            shown = real[:16].float().cpu()
            with run.registry.blame("model", s.model, "reconstruct()"):
                redrawn = model.reconstruct(shown).float().cpu()
            pairs = torch.stack([shown.view(2, 8, *shown.shape[1:]),
                                 redrawn.view(2, 8, *shown.shape[1:])], dim=1)
            pictures.save_grid(pairs.flatten(0, 1), folder / "reconstructions.png",
                               f"real (rows 1, 3) and reconstructed (rows 2, 4): {label}")
        with run.registry.blame("model", s.model, "traversals()"):
            traversals = model.traversals(generator)
            for name in traversals:
                pictures.check_file_name(name)
        strength, measure = {}, ""
        codes = model.code_names()
        if isinstance(model, CodeKL) and real is not None:
            with run.registry.blame("model", s.model, "code_kl()"):
                strength, measure = dict(zip(codes, model.code_kl(real).tolist())), "KL"
        elif matrix is not None:
            strength, measure = dict(zip(matrix.codes, matrix.nmi.max(axis=1).tolist())), "NMI"
    for name, images in traversals.items():
        pictures.save_grid(images, folder / "traversals" / f"{name}.png",
                           f"{name} (varies along each row): {label}")
    swept = figure_rows([c for c in codes if c in traversals], strength, measure, matrix)
    for name, _ in swept:
        pictures.save_gif(traversals[name], folder / "traversals" / f"{name}.gif")
    if swept:
        width = max(traversals[c].shape[1] for c, _ in swept)
        rows = torch.full((len(swept), width, *traversals[swept[0][0]].shape[2:]), 0.5)
        for r, (name, _) in enumerate(swept):
            rows[r, :traversals[name].shape[1]] = traversals[name][0]
        pictures.labelled_rows(rows, [text for _, text in swept],
                               f"traversals, one code per row: {label}"
                               ).save(folder / "traversals.png")


def figure_rows(codes: list[str], strength: dict[str, float], measure: str,
                matrix: CodeFactor | None) -> list[tuple[str, str]]:
    """The rows of the traversal figure: ``codes`` strongest first (by ``strength``, named
    ``measure``; codes without one keep their order, last), each with its label, as in
    ``latent_3  KL 2.31  scale``: the code, its strength, and the factor it holds most of
    in ``matrix`` (the final evaluation's)."""
    rows = []
    for code in sorted(codes, key=lambda c: -strength.get(c, -np.inf)):
        parts = [code]
        if code in strength:
            parts.append(f"{measure} {strength[code]:.2f}")
        if matrix is not None and code in matrix.codes:
            parts.append(matrix.best_factor(matrix.codes.index(code)) or "no factor")
        rows.append((code, "  ".join(parts)))
    return rows
