"""Checkpoints: written atomically, read back as tensors only.

A checkpoint holds plain containers of tensors and numbers (``torch.load(weights_only=True)``
refuses anything else, so loading one never runs code from the file). It is written to a
temporary file in the same folder, synced, then renamed over the old one: a crash at any
moment leaves either the previous checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from disentangle.errors import UsageError, first_line

FORMAT = 1


def save(path: Path, state: dict[str, Any]) -> None:
    """Atomically write ``state`` (tensors, numbers, strings, nested dicts/lists) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a process killed mid-write
        stale.unlink(missing_ok=True)
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
        if "Unsupported global" in str(exc):  # a pickle naming code to call
            raise UsageError(f"refusing to load {path}: it holds objects other than tensors "
                             "and plain data, which could run code when loaded") from None
        raise UsageError(f"checkpoint {path} is corrupt: not a pickle of tensors") from None
    except OSError as exc:
        raise UsageError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # noqa: BLE001 (torn or random bytes fail in any way)
        reason = first_line(exc) or type(exc).__name__
        raise UsageError(f"checkpoint {path} is corrupt or truncated: {reason}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UsageError(f"{path} is not a disentangle checkpoint (format {FORMAT})")
    return state


def nonfinite(state: Any, where: str = "") -> str | None:
    """Where ``state`` (nested dicts and lists of tensors) first holds a NaN or infinite
    value, as a key path, or None when it holds none."""
    if isinstance(state, torch.Tensor):
        if state.is_floating_point() or state.is_complex():
            return None if bool(torch.isfinite(state).all()) else where or "value"
        return None
    items = (state.items() if isinstance(state, dict)
             else enumerate(state) if isinstance(state, (list, tuple)) else ())
    for key, value in items:
        found = nonfinite(value, f"{where}/{key}" if where else str(key))
        if found:
            return found
    return None
