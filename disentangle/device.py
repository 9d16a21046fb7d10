"""Choosing the one device a run trains on, and preparing the host for training."""

from __future__ import annotations

import ctypes
import functools
import math
import os
import platform
import re

import torch

from disentangle.errors import UsageError

#: glibc's mallopt parameters (malloc.h) and the values the runner sets
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 << 20  # the ceiling of glibc's own adaptive threshold
_TRIM_THRESHOLD = 128 << 20

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


@functools.cache
def keep_freed_host_memory() -> bool:
    """Make glibc's malloc keep the memory a training step frees for the next step.

    A step frees and allocates again, every time, blocks of megabytes: gradients, the
    optimisers' temporaries, activations. By default glibc serves blocks above an adaptive
    threshold with fresh memory maps and hands the top of its heap back to the kernel once
    enough of it is free, so whether a step faults its blocks in anew depends on what came
    before it (a checkpoint's host copy is enough to change it), and a step that does
    spends a good part of its time in page faults (``benchmarks/results/step_speed.txt``).
    Fixing the map threshold at that adaptive threshold's ceiling and the trim threshold
    well above a step's allocations keeps such blocks in the heap; memory the process no
    longer needs is then returned later, not sooner. A process-wide setting, made once per
    process and only under glibc (elsewhere nothing is changed); returns whether it was
    applied.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
                and libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
