"""disentangle: train, score and compare disentangled representation learners.

Public entry points::

    import disentangle
    ds = disentangle.load_dataset("dsprites")
    disentangle.cores.mig(codes, factors)      # every first-party metric's array core
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from disentangle.hookspecs import hookimpl

if TYPE_CHECKING:
    from disentangle.datasets import FactorDataset

__version__ = "0.1.0"
__all__ = ["hookimpl", "load_dataset", "__version__"]


def load_dataset(name: str, data_dir: str | Path | None = None) -> FactorDataset:
    """The registered dataset ``name``, ready to sample (reads ``data_dir`` if it uses files)."""
    from disentangle.registry import get_registry

    return get_registry().dataset(name)(data_dir=data_dir)


def __getattr__(name: str):
    # submodules with heavy imports load on first use, keeping ``import disentangle`` light
    if name in ("cores", "metrics"):
        import importlib

        return importlib.import_module(f"disentangle.{name}")
    raise AttributeError(f"module 'disentangle' has no attribute {name!r}")
