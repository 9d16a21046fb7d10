"""Peak memory of training on the large datasets, read from full-size files.

Writes full-size synthetic files in the official layouts (``3dshapes.h5``: 480,000 images,
5.9 GB; ``mpi3d_toy.npz``: 1,036,800 images, 12.7 GB, an uncompressed archive as numpy
writes it; and, with ``--all``, the smallNORB matrix files and the 183 Cars3D MATLAB files,
with ``mpi3d_realistic`` and ``mpi3d_real`` linked to the toy file). Each image paints one
horizontal band per factor with a grey level that encodes the factor's value, so every
combination has its own image. Then, for each dataset, one process runs::

    disentangle run beta_vae --dataset NAME --data-dir DIR --steps 50 --metrics mig

(training, the MIG evaluation on 10,000 points, logging to a throw-away MLflow store) and
reports its peak resident memory (``VmHWM``, which counts the file pages it touched) and
wall time (Linux only). The files are kept in ``--dir`` and reused by a second call. From the
repository root::

    python benchmarks/dataset_memory.py [--all] [--dir benchmarks/runs/dataset_memory]
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from disentangle.registry import get_registry

#: the command each measured process runs: the CLI, then its own peak memory (VmHWM: the
#: high-water mark of this program's memory; ru_maxrss would also count the memory of the
#: process it was forked from, which Linux keeps across exec)
CHILD = """import re, sys
from disentangle.cli import main
code = main(sys.argv[1:])
status = open("/proc/self/status").read()
print("peak_rss_kb", re.search(r"VmHWM:\\s+(\\d+)", status).group(1), flush=True)
sys.exit(code)
"""
ROWS = 20_000  # images written per chunk


def banded(factors: np.ndarray, sizes: tuple[int, ...], side: int, channels: int
           ) -> np.ndarray:
    """uint8 ``[n, side, side, channels]``: band ``k`` (of ``K``) at grey level
    ``(f_k + 1) * 255 // size_k``."""
    out = np.zeros((len(factors), side, side, channels), np.uint8)
    band = side // len(sizes)
    for k, size in enumerate(sizes):
        level = ((factors[:, k] + 1) * 255 // size).astype(np.uint8)
        out[:, k * band:(k + 1) * band] = level[:, None, None, None]
    return out


def grid_chunks(sizes: tuple[int, ...], side: int, channels: int):
    n = int(np.prod(sizes))
    for start in range(0, n, ROWS):
        factors = np.stack(np.unravel_index(np.arange(start, min(n, start + ROWS)), sizes), 1)
        yield banded(factors, sizes, side, channels)


def write_shapes3d(path: Path) -> None:
    import h5py

    from disentangle_plugins.datasets.shapes3d import Shapes3D, grid_values

    sizes = Shapes3D.factor_sizes
    with h5py.File(path, "w") as file:
        images = file.create_dataset("images", (int(np.prod(sizes)), 64, 64, 3), np.uint8)
        done = 0
        for chunk in grid_chunks(sizes, 64, 3):
            images[done:done + len(chunk)] = chunk
            done += len(chunk)
        file.create_dataset("labels", data=grid_values(sizes))


def write_mpi3d(path: Path) -> None:
    """The archive as ``np.savez`` writes it (one stored ``images.npy``), streamed."""
    from disentangle_plugins.datasets.mpi3d import MPI3D

    sizes = MPI3D.factor_sizes
    header = {"descr": "|u1", "fortran_order": False,
              "shape": (int(np.prod(sizes)), 64, 64, 3)}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive, \
            archive.open("images.npy", "w", force_zip64=True) as member:
        np.lib.format.write_array_header_1_0(member, header)
        for chunk in grid_chunks(sizes, 64, 3):
            member.write(chunk.tobytes())


def write_smallnorb(folder: Path) -> None:
    from disentangle_plugins.datasets.smallnorb import PREFIXES

    for prefix, instances in zip(PREFIXES, ((4, 6, 7, 8, 9), (0, 1, 2, 3, 5))):
        grid = np.array(np.meshgrid(range(5), instances, range(9), range(18), range(6),
                                    indexing="ij")).reshape(5, -1).T
        pixels = banded(grid, (5, 10, 9, 18, 6), 96, 1)[..., 0]
        pairs = np.stack([pixels, 255 - pixels], axis=1)
        info = np.stack([grid[:, 1], grid[:, 2], 2 * grid[:, 3], grid[:, 4]], 1)
        for kind, array, magic in (("dat", pairs, 0x1E3D4C55),
                                   ("cat", grid[:, 0].astype("<i4"), 0x1E3D4C54),
                                   ("info", info.astype("<i4"), 0x1E3D4C54)):
            dims = list(array.shape) + [1] * (3 - array.ndim)
            with gzip.open(folder / f"{prefix}-{kind}.mat.gz", "wb", compresslevel=1) as out:
                out.write(np.array([magic, array.ndim, *dims], "<u4").tobytes())
                out.write(array.tobytes())


def write_cars3d(folder: Path) -> None:
    from scipy.io import savemat

    for car in range(183):
        grid = np.array(np.meshgrid(range(4), range(24), [car], indexing="ij")).reshape(3, -1).T
        views = banded(grid, (4, 24, 183), 128, 3).reshape(4, 24, 128, 128, 3)
        savemat(folder / f"car_{car + 1:03d}_mesh.mat",
                {"im": np.ascontiguousarray(np.einsum("eahwc->hwcae", views))})


def prepare(root: Path, names: list[str]) -> None:
    """Write each dataset's files into ``root/<folder>`` unless they are there."""
    jobs = {"shapes3d": ("shapes3d/3dshapes.h5", write_shapes3d),
            "mpi3d_toy": ("mpi3d/mpi3d_toy.npz", write_mpi3d),
            "smallnorb": ("smallnorb/done", write_smallnorb),
            "cars3d": ("cars3d/done", write_cars3d)}
    for name in names:
        if name in ("mpi3d_realistic", "mpi3d_real"):
            link = root / "mpi3d" / f"{name}.npz"
            if not link.exists():
                link.symlink_to("mpi3d_toy.npz")
            continue
        target, write = jobs[name]
        path = root / target
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        print(f"writing {name}...", flush=True)
        if path.name == "done":
            write(path.parent)
            path.write_text("")
        else:
            write(path)
        size = sum(p.stat().st_size for p in path.parent.iterdir() if p.is_file())
        print(f"  {size / 1e9:.2f} GB in {time.perf_counter() - started:.0f} s", flush=True)


def measure(name: str, root: Path, steps: int) -> tuple[int, float, int]:
    """Peak RSS (kB), wall seconds and exit code of one run on ``name``."""
    with tempfile.TemporaryDirectory() as store:
        command = [sys.executable, "-c", CHILD, "run", "beta_vae", "--dataset", name,
                   "--data-dir", str(root), "--steps", str(steps), "--eval-every",
                   str(steps), "--metrics", "mig", "--no-progress", "--tracking-uri",
                   f"sqlite:///{store}/mlflow.db", "--experiment", "memory"]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=store,
                              env={**os.environ, "DISENTANGLE_CACHE": f"{store}/cache"})
        wall = time.perf_counter() - started
    peak = next((int(line.split()[1]) for line in done.stdout.splitlines()
                 if line.startswith("peak_rss_kb")), -1)
    mig = next((line.split()[-1] for line in done.stdout.splitlines()
                if line.strip().startswith("mig ")), "-")
    print(f"{name:16s} peak RSS {peak / 1024:7.0f} MiB  wall {wall:5.0f} s  exit "
          f"{done.returncode}  mig {mig}", flush=True)
    if done.returncode:
        print(done.stderr[-2000:], flush=True)
    return peak, wall, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="benchmarks/runs/dataset_memory",
                        help="folder of the generated files (kept for reuse)")
    parser.add_argument("--all", action="store_true",
                        help="also smallnorb, cars3d and the other MPI3D variants")
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    root = Path(args.dir).resolve()
    names = ["shapes3d", "mpi3d_toy"] + (
        ["mpi3d_realistic", "mpi3d_real", "smallnorb", "cars3d"] if args.all else [])
    get_registry()  # fail early if the plugins are not installed
    prepare(root, names)
    print(f"beta_vae, {args.steps} steps, batch 64, MIG on 10,000 points; one process each",
          flush=True)
    failed = [name for name in names if measure(name, root, args.steps)[2]]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
