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
