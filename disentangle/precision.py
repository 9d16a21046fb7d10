"""Floating-point modes of a training step: fp32, or mixed precision with bf16 or fp16.

Mixed precision runs every forward pass of a step under ``torch.autocast`` (matrix products
and convolutions in the low-precision type, reductions and losses in float32), while the
weights, gradients and optimiser states stay float32. fp16's narrow range makes small
gradients vanish, so its losses are scaled before back-propagation by a
``torch.amp.GradScaler`` per optimiser (see :meth:`disentangle.models.Model.optimize`);
bf16 has float32's range and needs none.

Evaluation always runs in float32, so a run's scores do not depend on its training mode's
rounding of the encoder at scoring time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from disentangle.errors import UsageError

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse, in one line, a mode this device cannot train in."""
    if precision == "fp32":
        return
    if device.type == "cpu" and precision == "fp16":
        raise UsageError("--precision fp16 needs a CUDA device (the CPU has no fast fp16 "
                         "arithmetic); use --precision bf16 on the CPU")
    if device.type == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise UsageError(f"--precision bf16: {torch.cuda.get_device_name(device)} has no "
                         "bf16 arithmetic; use --precision fp16")
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--precision {precision} is supported on the CPU and CUDA, not on "
                         f"{device.type}; use --precision fp32")


@contextlib.contextmanager
def autocast(precision: str, device: torch.device) -> Iterator[None]:
    """The forward passes of a training step in ``precision`` (nothing changes for fp32)."""
    if precision == "fp32":
        yield
        return
    with torch.autocast(device.type, dtype=_DTYPES[precision]):
        yield


def scales_losses(precision: str) -> bool:
    """Whether ``precision`` back-propagates scaled losses."""
    return precision == "fp16"
