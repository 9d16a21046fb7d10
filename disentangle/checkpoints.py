"""Checkpoints: written atomically, read back as tensors only.

A checkpoint holds plain containers of tensors and numbers (``torch.load(weights_only=True)``
refuses anything else, so loading one never runs code from the file). It is written to a
temporary file in the same folder, synced, then renamed over the old one: a crash at any
moment leaves either the previous checkpoint or the new one, never a torn file.

A run writes its checkpoints through a :class:`Writer`, which copies the state to host memory
and serialises and syncs that copy on a background thread, so training goes on meanwhile.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import threading
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


def _tensors(state: Any, where: str = "") -> list[tuple[str, torch.Tensor]]:
    """Every tensor in ``state`` (nested dicts, lists and tuples) with its key path."""
    if isinstance(state, torch.Tensor):
        return [(where or "value", state)]
    items = (state.items() if isinstance(state, dict)
             else enumerate(state) if isinstance(state, (list, tuple)) else ())
    return [found for key, value in items
            for found in _tensors(value, f"{where}/{key}" if where else str(key))]


def nonfinite(state: Any) -> str | None:
    """Where ``state`` (nested dicts and lists of tensors) first holds a NaN or infinite
    value, as a key path, or None when it holds none.

    The common answer, none, is found from each tensor's minimum and maximum (a NaN or an
    infinity shows in one of them), read from the device once; only a state that fails
    that is searched tensor by tensor for the path.
    """
    floating = [(where, t.detach()) for where, t in _tensors(state)
                if (t.is_floating_point() or t.is_complex()) and t.numel()]
    if not floating:
        return None
    ends = [torch.stack(torch.view_as_real(t).aminmax() if t.is_complex() else t.aminmax())
            .float() for _, t in floating]
    if bool(torch.isfinite(torch.cat([e.to(ends[0].device) for e in ends])).all()):
        return None
    return next(where for where, t in floating if not bool(torch.isfinite(t).all()))


def host_copy(state: Any) -> Any:
    """A copy of ``state`` whose containers are new and whose tensors are detached copies
    in host memory: training can go on changing the originals while the copy is written."""
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {key: host_copy(value) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(host_copy(value) for value in state)
    return state


class Writer:
    """Writes checkpoints with :func:`save` on a background thread, one at a time.

    :meth:`submit` copies the state to host memory (see :func:`host_copy`) before it
    returns, so the steps that follow cannot change what is written; the file is then
    serialised, synced and renamed into place while training goes on. :meth:`wait` blocks
    until the write in progress is complete and returns its step, or raises the error it
    met, on the caller's thread.
    """

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._step: int | None = None
        self._error: BaseException | None = None

    def submit(self, path: Path, state: dict[str, Any], step: int) -> int | None:
        """Start writing ``state``, the checkpoint of ``step``, to ``path``; first wait for
        the write before it, whose step is returned (None when there was none)."""
        previous = self.wait()
        copy = host_copy(state)

        def write() -> None:
            try:
                save(path, copy)
            except BaseException as exc:  # noqa: BLE001 (handed to the caller by wait())
                self._error = exc

        self._step, self._error = step, None
        self._thread = threading.Thread(target=write, name="checkpoint-writer", daemon=True)
        self._thread.start()
        return previous

    def wait(self) -> int | None:
        """Block until the write in progress ends; its step, or None when none was in
        progress. Its error, if it failed, is raised here."""
        if self._thread is None:
            return None
        self._thread.join()
        step, error = self._step, self._error
        self._thread = self._step = self._error = None
        if error is not None:
            raise error
        return step
