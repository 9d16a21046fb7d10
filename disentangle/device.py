"""Choosing the one device a run trains on."""

from __future__ import annotations

import math
import os
import re

import torch

from disentangle.errors import UsageError

#: the device names a run accepts, whatever this machine has
_FORM = re.compile(r"auto|cpu|mps|cuda(:\d{1,3})?")


def check_device_name(name: object) -> str:
    """``name`` if it is a device name a run accepts (auto, cpu, mps, cuda or cuda:N), else a
    UsageError; whether this machine has that device is :func:`resolve_device`'s question."""
    if not isinstance(name, str) or not _FORM.fullmatch(name):
        raise UsageError(f"unknown device {name!r}; use auto, cpu or cuda[:N]")
    return name


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


def available_memory(device: torch.device) -> int | None:
    """Bytes free for a new allocation on ``device`` (None where it cannot be told)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_batch_fits(batch_size: int, image_shape: tuple[int, ...], device: torch.device) -> None:
    """Refuse a batch whose images alone, as float32, would take more than a quarter of the
    device's free memory: the network's activations need several times that, so such a run
    could only fail once it has started allocating."""
    free = available_memory(device)
    need = 4 * batch_size * math.prod(image_shape)
    if free is not None and need > free // 4:
        raise UsageError(f"batch size {batch_size:,} needs {need / 2**30:.1f} GiB for its "
                         f"images alone, over a quarter of the {free / 2**30:.1f} GiB free on "
                         f"{device}; lower --batch-size")
