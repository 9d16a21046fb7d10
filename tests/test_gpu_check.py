"""The accelerator check's script is prepared here, where no accelerator is: it parses, and
its dry run does every part of the check on the CPU at toy sizes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"


def test_the_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0


def test_the_script_refuses_a_call_without_a_folder():
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 2 and "usage: gpu_check.sh" in done.stderr


def test_the_dry_run_times_compares_and_trains_on_the_cpu(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(SCRIPT), "--dry-run", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    report = (tmp_path / "out" / "gpu_check.txt").read_text()
    assert "[dry run]" in report
    assert "vae: runner" in report and "ratio" in report and "bf16" in report
    assert "0.0e+00  same" in report  # the CPU against itself
    records = [json.loads(line) for line in
               (tmp_path / "out" / "gpu_check_mig.jsonl").read_text().splitlines()]
    assert [(r["model"], r["status"]) for r in records] == [
        ("infogan", "FINISHED"), ("infogan_cr", "FINISHED"), ("beta_tcvae", "FINISHED")]
    assert all(0 <= r["mig"] <= 1 for r in records)
