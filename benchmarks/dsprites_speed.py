"""dSprites rendering throughput, and the peak memory of a short training run on it.

1. Throughput of ``DSprites().images(factors)`` (float tensors ``[n, 1, 64, 64]``, the form
   models consume) for batch sizes 64, 1024 and 8192, with 1 and 2 torch threads; best of
   five repetitions of about 20,000 images each. The load average is printed with it: the
   machine is shared, so other work lowers the figures.
2. Peak resident memory (``ru_maxrss``) of ``disentangle run infogan --dataset dsprites
   --steps 50`` in a fresh process and an empty folder, and of bare interpreters that only
   import torch, mlflow and the runner, to show what the peak is made of.

Run: ``nice python benchmarks/dsprites_speed.py`` (a few minutes: the training run ends with
the default evaluation).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from disentangle_plugins.datasets.dsprites import DSprites

TOTAL = 20_480


def throughput(ds: DSprites, batch: int, threads: int) -> float:
    """Images per second, best of five passes over ``TOTAL`` random factor rows."""
    torch.set_num_threads(threads)
    factors = ds.sample_factors(TOTAL, np.random.default_rng(0))
    ds.images(factors[:batch])
    best = 0.0
    for _ in range(5):
        start = time.perf_counter()
        for i in range(0, TOTAL, batch):
            ds.images(factors[i:i + batch])
        best = max(best, TOTAL / (time.perf_counter() - start))
    return best


#: runs the command given as arguments and prints the peak resident memory of its process
#: tree in kB; being a small process itself, it keeps the big parent's memory (which a child
#: forked from it inherits in ``ru_maxrss``) out of the figure
_MEASURE = ("import resource, subprocess, sys; "
            "code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL, "
            "stderr=subprocess.DEVNULL); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)")


def peak_rss_mb(argv: list[str], cwd: Path) -> tuple[float, float, int]:
    """Peak resident memory (MB), wall time (s) and exit code of a command."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _MEASURE, *argv], cwd=cwd, check=True,
                         capture_output=True, text=True).stdout.split()
    return int(out[0]) / 1024, time.perf_counter() - start, int(out[1])


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> int:
    with tempfile.TemporaryDirectory() as empty:
        ds = DSprites(data_dir=empty)
        print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average before: {load()}")
        print("rendering throughput, images/s (float [n, 1, 64, 64]):")
        for threads in (1, 2):
            rates = [f"batch {b}: {throughput(ds, b, threads):,.0f}" for b in (64, 1024, 8192)]
            print(f"  {threads} thread(s): " + ", ".join(rates))
        print(f"load average after: {load()}")

        print("peak resident memory (ru_maxrss of a fresh process):")
        python = sys.executable
        probes = {
            "python -c 'import torch'": [python, "-c", "import torch"],
            "python -c 'import mlflow'": [python, "-c", "import mlflow"],
            "python -c 'import torch, mlflow, disentangle.loop'":
                [python, "-c", "import torch, mlflow, disentangle.loop"],
            "disentangle run infogan --dataset dsprites --steps 50":
                [python, "-m", "disentangle.cli", "run", "infogan", "--dataset", "dsprites",
                 "--steps", "50", "--no-progress"],
        }
        for label, argv in probes.items():
            with tempfile.TemporaryDirectory() as cwd:
                mb, seconds, code = peak_rss_mb(argv, Path(cwd))
            print(f"  {label}: {mb:.0f} MB ({seconds:.0f} s, exit code {code})")
        print(f"load average at the end: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
