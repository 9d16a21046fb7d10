"""Comparing runs: logged scores as pandas tables (mean +- std), box plots per model, and
curves of every score and loss over training.

Runs are read from the tracking store with ``mlflow.search_runs``. A model's *setting* is
the hyper-parameters that vary between its runs (``beta=4``), so a grid over one model
becomes one row per grid point, and seeds are what the spread is computed over.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from disentangle.errors import UsageError
from disentangle.suites import KEY_TAG, SUITE_TAG

GROUP = ["dataset", "model", "setting"]


def load_runs(uri: str, experiment: str | None = None, suite: str | None = None,
              finished_only: bool = True) -> pd.DataFrame:
    """Runs of an experiment and/or suite as one row each (``params.*``, ``metrics.*``...)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    if experiment:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            names = sorted(e.name for e in client.search_experiments())
            raise UsageError(f"no experiment {experiment!r} in {uri}; experiments: "
                             f"{', '.join(names) or 'none'}")
        experiments = [found.experiment_id]
    else:
        experiments = [e.experiment_id for e in client.search_experiments()]
    filters = [f"tags.`{SUITE_TAG}` = '{suite}'"] if suite else []
    if finished_only:
        filters.append("attributes.status = 'FINISHED'")
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiments, " and ".join(filters), output_format="pandas")
    if runs.empty:
        return runs
    key = f"tags.{KEY_TAG}"
    if key in runs:
        runs = runs[runs[key] != "parent"]
    return runs.reset_index(drop=True)


def metric_names(runs: pd.DataFrame) -> list[str]:
    """The headline scores logged by the runs (``eval/mig``, not ``eval/mig.shape``)."""
    return sorted(c[len("metrics.eval/"):] for c in runs.columns
                  if c.startswith("metrics.eval/") and "." not in c[len("metrics.eval/"):])


def settings(runs: pd.DataFrame) -> pd.Series:
    """Per run, the model hyper-parameters that vary among runs of the same model/dataset."""
    out = pd.Series("", index=runs.index, dtype=object)
    params = [c for c in runs.columns if c.startswith("params.model.")]
    for _, group in runs.groupby(["params.model", "params.dataset"]):
        varying = [c for c in params if group[c].dropna().nunique() > 1]
        out[group.index] = group[varying].apply(
            lambda row, cols=varying: " ".join(f"{c[len('params.model.'):]}={row[c]}"
                                               for c in cols), axis=1) if varying else ""
    return out


def tidy(runs: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """One row per run: dataset, model, setting, seed, run_id and one column per metric."""
    missing = [m for m in metrics if f"metrics.eval/{m}" not in runs]
    if missing:
        raise UsageError(f"no run logged {', '.join(missing)}; logged: "
                         f"{', '.join(metric_names(runs)) or 'nothing'}")
    table = pd.DataFrame({
        "dataset": runs["params.dataset"], "model": runs["params.model"],
        "setting": settings(runs), "seed": runs["params.seed"].astype(int),
        "run_id": runs["run_id"],
    })
    for m in metrics:
        table[m] = runs[f"metrics.eval/{m}"].astype(float)
    return table.sort_values([*GROUP, "seed"]).reset_index(drop=True)


def summarize(table: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Mean, standard deviation (ddof 1) and run count of every metric per model setting."""
    grouped = table.groupby(GROUP, sort=True)
    summary = grouped[metrics].agg(["mean", "std"])
    summary.columns = [f"{m} {stat}" for m, stat in summary.columns]
    summary.insert(0, "runs", grouped.size())
    return summary.reset_index()


def formatted(summary: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """The summary with one ``mean +- std`` text column per metric, for printing."""
    out = summary[[*GROUP, "runs"]].copy()
    for m in metrics:
        mean, std = summary[f"{m} mean"], summary[f"{m} std"].fillna(0.0)
        out[m] = [f"{a:.3f} ± {b:.3f}" if np.isfinite(a) else "-" for a, b in zip(mean, std)]
    return out


def markdown(frame: pd.DataFrame) -> str:
    """A data frame as a GitHub Markdown table (numbers right-aligned)."""
    cells = frame.astype(str)
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    rule = ["---:" if n else "---" for n in numeric]
    lines = [list(map(str, frame.columns)), rule, *cells.to_numpy().tolist()]
    return "\n".join("| " + " | ".join(row) + " |" for row in lines)


def plot(table: pd.DataFrame, metrics: list[str], path: Path, title: str) -> Path:
    """Box plots of each metric per model setting, with every run as a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keyed = list(table.groupby(GROUP, sort=True))
    labels = [" ".join(str(x) for x in key if x) for key, _ in keyed]
    groups = [g for _, g in keyed]
    fig, axes = plt.subplots(len(metrics), 1, figsize=(max(6, 1.3 * len(groups) + 2),
                                                       3 * len(metrics)), squeeze=False)
    for ax, m in zip(axes[:, 0], metrics):
        values = [g[m].dropna().to_numpy() for g in groups]
        ax.boxplot(values, showfliers=False)
        for i, v in enumerate(values, 1):
            jitter = np.linspace(-0.12, 0.12, len(v)) if len(v) > 1 else np.zeros(1)
            ax.plot(i + jitter[:len(v)], v, "o", alpha=0.7, markersize=4)
        ax.set_xticks(range(1, len(groups) + 1))
        ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel(m)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def histories(uri: str, run_ids: list[str]) -> pd.DataFrame:
    """Every logged step of the runs' headline ``eval/`` scores and ``train/`` losses: one
    row per (run_id, key, step) with its value."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    rows = []
    for run_id in run_ids:
        for key in client.get_run(run_id).data.metrics:
            headline = key.startswith("eval/") and "." not in key[len("eval/"):]
            if headline or key.startswith("train/"):
                rows += [(run_id, key, m.step, m.value)
                         for m in client.get_metric_history(run_id, key)]
    return pd.DataFrame(rows, columns=["run_id", "key", "step", "value"])


def curves(table: pd.DataFrame, history: pd.DataFrame, path: Path, title: str) -> Path:
    """One panel per score and loss in ``history`` (eval scores first) against step: per
    model setting of ``table`` (:func:`tidy`), the mean over its seeds at each step with a
    band of one standard deviation (where two or more seeds logged that step)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labelled = history.merge(table[[*GROUP, "run_id"]], on="run_id")
    labelled["label"] = labelled[GROUP].apply(
        lambda row: " ".join(str(x) for x in row if x), axis=1)
    keys = sorted(labelled["key"].unique(), key=lambda k: (not k.startswith("eval/"), k))
    columns = min(4, max(1, len(keys)))
    rows = -(-len(keys) // columns)
    height = 3.0 * rows + 0.9  # the panels, the title above and the legend below
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, height), squeeze=False)
    colours = {label: f"C{i}" for i, label in enumerate(sorted(labelled["label"].unique()))}
    for ax, key in zip(axes.flat, keys):
        for label, group in labelled[labelled["key"] == key].groupby("label", sort=True):
            stats = group.groupby("step")["value"].agg(["mean", "std"])
            steps = stats.index.to_numpy()
            mean, std = stats["mean"].to_numpy(), stats["std"].fillna(0.0).to_numpy()
            ax.plot(steps, mean, "-o" if len(steps) < 12 else "-", markersize=3,
                    color=colours[label], label=label)
            ax.fill_between(steps, mean - std, mean + std, color=colours[label], alpha=0.2,
                            linewidth=0)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.set_visible(False)
    handles = [plt.Line2D([], [], color=c, marker="o", markersize=3) for c in colours.values()]
    fig.legend(handles, list(colours), loc="lower center", ncol=min(4, len(colours)),
               fontsize=8, frameon=False)
    fig.suptitle(f"{title}: mean and one standard deviation over seeds", fontsize=10)
    fig.tight_layout(rect=(0, 0.45 / height, 1, 1 - 0.35 / height))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
