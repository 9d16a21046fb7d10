"""Choosing the one device a run trains on."""

from __future__ import annotations

import torch

from disentangle.errors import UsageError


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; an explicit choice must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device {name!r}; use auto, cpu or cuda[:N]") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(
                f"--device {name}: CUDA is not available here (PyTorch {torch.__version__}, "
                f"CUDA build: {torch.version.cuda or 'none'}); use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
    elif device.type not in ("cpu", "mps"):
        raise UsageError(f"unsupported device {name!r}; use auto, cpu or cuda[:N]")
    elif device.index not in (None, 0):
        raise UsageError(f"--device {name}: there is one {device.type} device; use "
                         f"--device {device.type}")
    return device
