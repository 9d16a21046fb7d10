"""Where a run came from: the tags that let a logged run be traced and reproduced."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import torch

import disentangle
from disentangle.plan import Plan
from disentangle.registry import Registry


def git_commit() -> str | None:
    """The commit of the checkout this package runs from, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(disentangle.__file__).parent, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def run_tags(plan: Plan, registry: Registry, device: torch.device) -> dict[str, str]:
    """Versions, device, host, the plugins' distributions, the git commit and the dataset's
    source (a renderer or a file) of a new run."""
    settings = plan.settings
    tags = {
        "disentangle.version": disentangle.__version__,
        "torch.version": torch.__version__,
        "device": str(device),
        "host.python": platform.python_version(),
        "host.name": platform.node(),
        "host.pid": str(os.getpid()),
        "model.distribution": registry.get("model", settings.model).distribution,
        "dataset.distribution": registry.get("dataset", settings.dataset).distribution,
    }
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    source = getattr(plan.dataset, "source", None)
    if source:
        tags["dataset.source"] = str(source)
    return tags
