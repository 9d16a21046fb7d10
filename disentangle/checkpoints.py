"""Checkpoints: written atomically, read back as tensors only.

A checkpoint holds plain containers of tensors and numbers (``torch.load(weights_only=True)``
refuses anything else, so loading one never runs code from the file). It is written to a
temporary file in the same folder, synced, then renamed over the old one: a crash at any
moment leaves either the previous checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from disentangle.errors import UsageError

FORMAT = 1


def save(path: Path, state: dict[str, Any]) -> None:
    """Atomically write ``state`` (tensors, numbers, strings, nested dicts/lists) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save({"format": FORMAT, **state}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save`; refuse corrupt or code-carrying files."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UsageError(
            f"refusing to load {path}: it holds objects other than tensors and plain data, "
            f"which could run code when loaded ({str(exc).splitlines()[0]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise UsageError(f"checkpoint {path} is corrupt or truncated: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UsageError(f"{path} is not a disentangle checkpoint (format {FORMAT})")
    return state


def encode_config(config: dict[str, Any]) -> str:
    """Configs travel inside checkpoints as JSON text (a plain string is weights-only safe)."""
    return json.dumps(config, sort_keys=True)


def decode_config(text: str) -> dict[str, Any]:
    return json.loads(text)
