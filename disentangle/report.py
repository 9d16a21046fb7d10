"""A suite's results as one static HTML page to share: the comparison table, box plots and
curves, and per model setting the pictures of its best run.

The page loads nothing from the network: its style is inline and every image is a file
beside it, so the folder can be zipped, mailed or served as it is.
"""

from __future__ import annotations

import html
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from disentangle import compare

#: the final pictures a run logs that the report shows, in this order, with their captions
PICTURES = (("code_factor_mi.png", "which code holds which factor (final evaluation)"),
            ("traversals.png", "traversals, one code per row"),
            ("reconstructions.png", "real images above their reconstructions"))


@dataclass
class Best:
    """The run a model setting is shown by, and its pictures (paths relative to the page)."""

    label: str
    run_id: str
    seed: int
    score: str
    value: float
    pictures: list[tuple[str, str]]


def best_runs(table: pd.DataFrame, metric: str) -> list[tuple[str, pd.Series]]:
    """Per model setting of ``table`` (:func:`compare.tidy`), its run with the highest
    ``metric`` (the first seed among equals)."""
    out = []
    for key, group in table.groupby(compare.GROUP, sort=True):
        ranked = group.sort_values([metric, "seed"], ascending=[False, True],
                                   na_position="last")
        out.append((" ".join(str(x) for x in key if x), ranked.iloc[0]))
    return out


def fetch_pictures(uri: str, run_id: str, folder: Path) -> list[tuple[str, str]]:
    """Copy the run's :data:`PICTURES` that it logged into ``folder``; returns (file name,
    caption) of each one found. The code-factor matrix is the last evaluation's."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    logged = {a.path for a in client.list_artifacts(run_id)}
    steps = [int(a.path.rsplit("/", 1)[-1]) for a in client.list_artifacts(run_id, "eval")
             if a.is_dir and a.path.rsplit("/", 1)[-1].isdigit()] if "eval" in logged else []
    sources = {"code_factor_mi.png": f"eval/{max(steps)}/code_factor_mi.png" if steps else None,
               "traversals.png": "traversals.png" if "traversals.png" in logged else None,
               "reconstructions.png": ("reconstructions.png" if "reconstructions.png" in logged
                                       else None)}
    found = []
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, caption in PICTURES:
            source = sources[name]
            if source is None:
                continue
            try:
                local = client.download_artifacts(run_id, source, tmp)
            except OSError:  # listed folder without the file (an evaluation without codes)
                continue
            shutil.copyfile(local, folder / name)
            found.append((name, caption))
    return found


def _table(frame: pd.DataFrame) -> str:
    """A data frame as an HTML table, numbers right-aligned."""
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f'<td class="{"num" if n else ""}">{html.escape(str(v))}</td>'
                         for v, n in zip(row, numeric)) + "</tr>"
        for row in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_")[:80] or "run"


_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; }
th { background: #f0f0f0; } td.num { text-align: right; }
figure { display: inline-block; margin: 0.5em 1em 0.5em 0; vertical-align: top; }
figcaption { font-size: 0.85em; color: #555; }
img { max-width: 100%; }
"""


def write(uri: str, suite: str, table: pd.DataFrame, metrics: list[str], out: Path) -> Path:
    """Write ``index.html`` with its images into ``out`` (which must be writable) for the
    finished runs of ``suite`` in ``table``; returns the page's path."""
    summary = compare.formatted(compare.summarize(table, metrics), metrics)
    title = f"suite {suite}"
    compare.plot(table, metrics, out / "comparison.png", title)
    compare.curves(table, compare.histories(uri, list(table["run_id"])), out / "curves.png",
                   title)
    ranking = "mig" if "mig" in metrics else metrics[0]
    best = []
    for label, row in best_runs(table, ranking):
        folder = f"runs/{_slug(label)}"
        found = fetch_pictures(uri, row["run_id"], out / folder)
        best.append(Best(label, row["run_id"], int(row["seed"]), ranking,
                         float(row[ranking]),
                         [(f"{folder}/{name}", caption) for name, caption in found]))
    per_run = table.copy()
    for m in metrics:
        per_run[m] = per_run[m].map(lambda v: f"{v:.4f}")
    sections = []
    for b in best:
        figures = "".join(f'<figure><img src="{html.escape(src)}" alt="{html.escape(cap)}">'
                          f"<figcaption>{html.escape(cap)}</figcaption></figure>"
                          for src, cap in b.pictures) or "<p>this run logged no pictures</p>"
        sections.append(f"<h3>{html.escape(b.label)}</h3><p>best run by {b.score}: "
                        f"<code>{b.run_id}</code> (seed {b.seed}, {b.score} "
                        f"{b.value:.4f})</p>{figures}")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_STYLE}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{len(table)} finished runs; scores are the final evaluation's, mean ± standard deviation
over seeds.</p>
<h2>Comparison</h2>
{_table(summary)}
<figure><img src="comparison.png" alt="box plots per model setting">
<figcaption>each score per model setting; every run is a dot</figcaption></figure>
<h2>Over training</h2>
<figure><img src="curves.png" alt="scores and losses against step">
<figcaption>scores and losses against step; mean and one standard deviation over seeds
</figcaption></figure>
<h2>Best run of each model setting</h2>
{"".join(sections)}
<h2>Every run</h2>
{_table(per_run)}
</body></html>
"""
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
