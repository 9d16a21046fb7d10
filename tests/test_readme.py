"""The README's promises: its commands are the ones CI runs, its plugin example works."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import install_fake_distribution

from disentangle.cli import main
from disentangle.registry import get_registry

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_quick_start_commands_are_what_ci_runs():
    quick_start = README.split("## Quick start")[1].split("\n## ")[0]
    commands = [b.strip() for b in re.findall(r"```bash\n(.*?)```", quick_start, flags=re.S)]
    assert commands == ['pip install . && disentangle run infogan --dataset dsprites',
                        'pip install ".[test]" && pytest']
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == commands[1]


def test_plugin_example_works_as_written(tmp_path, workdir, monkeypatch, capsys):
    source = next(b for b in _blocks("python") if b.startswith("# my_models.py"))
    toml = next(b for b in _blocks("toml") if "[project.entry-points.disentangle]" in b)
    entry = re.search(r"\[project.entry-points.disentangle\]\n(\w+) = \"(\w+)\"", toml)
    site = tmp_path / "site"
    site.mkdir()
    (site / "my_models.py").write_text(source)
    install_fake_distribution(site, "my_models", None, {entry[1]: entry[2]})
    monkeypatch.syspath_prepend(str(site))
    get_registry.cache_clear()
    try:
        assert main(["list"]) == 0
        assert "tiny_ae" in capsys.readouterr().out
        assert main(["run", "tiny_ae", "--dataset", "dsprites", "--steps", "5",
                     "--no-progress", "--metrics", "mig", "--set", "latents=4"]) == 0
        out = capsys.readouterr().out
        assert "finished at step 5" in out and re.search(r"\bmig\s+\d\.\d{4}", out)
    finally:
        get_registry.cache_clear()


def test_metrics_table_lists_every_first_party_metric_once():
    section = README.split("## Metrics")[1].split("\n## ")[0]
    listed = re.findall(r"^\| `(\w+)` \|", section, flags=re.M)
    registered = [e.name for e in get_registry().entries["metric"].values()
                  if e.distribution.startswith("disentangle-bench")]
    assert sorted(listed) == sorted(registered)


def test_show_prints_a_metrics_reference_page(capsys):
    assert main(["show", "jemmig"]) == 0
    page = capsys.readouterr().out
    assert "source: Do and Tran, ICLR 2020" in page
    assert "num_points               10000" in page
    assert "sample: 10,000 factor rows of dsprites" in page
    assert "Lower is better" in page
    assert main(["show", "beta_vae"]) == 0  # a model and a metric: both pages
    both = capsys.readouterr().out
    assert "model beta_vae" in both and "metric beta_vae" in both
    assert main(["show", "no_such"]) == 2
    assert "unknown model, metric or dataset 'no_such'" in capsys.readouterr().err
