"""Shared fixtures and helpers: a toy third-party plugin installed the way pip would, a clean
cwd, loopback servers, and the tiny dataset and fixed-code "model" the metric tests share
(three factors of sizes (3, 4, 5) whose "image" is the factor row itself, and a model that
returns chosen functions of the factors as its codes)."""

from __future__ import annotations

import importlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from disentangle.datasets import FactorDataset
from disentangle.evaluation import Observer
from disentangle.metrics import Metric
from disentangle.models import Model, Representation
from disentangle.registry import get_registry

TOY_SOURCE = Path(__file__).parent / "toy" / "toy_plugin.py"


def install_fake_distribution(site: Path, name: str, module_file: Path | None,
                              entry_points: dict[str, str]) -> Path:
    """Write ``module_file`` and a ``.dist-info`` folder into ``site``, as pip install would."""
    site.mkdir(parents=True, exist_ok=True)
    if module_file is not None:
        shutil.copy(module_file, site / module_file.name)
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[disentangle]\n{lines}")
    return site


@pytest.fixture(scope="session")
def toy_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the installed toy plugin distribution ``toy-plugin``."""
    return install_fake_distribution(tmp_path_factory.mktemp("site"), "toy_plugin", TOY_SOURCE,
                                     {"toy": "toy_plugin"})


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty folder, with the default tracking store (``./mlflow.db``) and a run
    cache inside it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DISENTANGLE_DATA", raising=False)
    monkeypatch.setenv("DISENTANGLE_CACHE", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture
def with_toy(toy_site: Path, monkeypatch: pytest.MonkeyPatch, workdir: Path):
    """The process-wide registry, reloaded with the toy plugin installed."""
    monkeypatch.syspath_prepend(str(toy_site))
    importlib.invalidate_caches()
    get_registry.cache_clear()
    yield get_registry()
    sys.modules.pop("toy_plugin", None)
    get_registry.cache_clear()


@pytest.fixture
def blob_batch() -> torch.Tensor:
    """32 binary 16x16 images, each a 4x4 square at a random place: a batch a model can learn."""
    rng = np.random.default_rng(0)
    images = torch.zeros(32, 1, 16, 16)
    for i, (top, left) in enumerate(rng.integers(0, 13, size=(32, 2))):
        images[i, 0, top:top + 4, left:left + 4] = 1
    return images


@contextmanager
def _serving(command: Callable[[int], list[str]], what: str) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(command(port), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise AssertionError(f"{what} did not start") from None
                time.sleep(1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def http_service() -> Callable[[Callable[[int], list[str]], str], Any]:
    """Start a server (``command(port)``) on a free loopback port, wait until its
    ``/health`` answers, yield its base URL, and stop it afterwards."""
    return _serving


class TinyDataset(FactorDataset):
    """Factors of sizes (3, 4, 5); the "image" of a factor row is the row itself."""

    name = "tiny"
    factor_names = ("shape", "size", "position")
    factor_sizes = (3, 4, 5)
    image_shape = (1, 1, 3)
    categorical_factors = ("shape",)

    def images(self, factors: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        return torch.as_tensor(np.asarray(factors), dtype=torch.float64).reshape(-1, 1, 1, 3)


@dataclass(frozen=True)
class NoConfig:
    pass


class CodeModel(Model):
    """Encodes an image (a factor row) with fixed functions of the factors.

    ``continuous(factors) -> [n, d]`` and optionally ``categorical(factors) -> [n, m]``.
    It counts the images it encodes, to check the observer's caching.
    """

    name = "codes"
    Config = NoConfig

    def __init__(self, continuous: Callable[[np.ndarray], np.ndarray],
                 categorical: Callable[[np.ndarray], np.ndarray] | None = None,
                 dataset: FactorDataset | None = None):
        super().__init__(NoConfig(), dataset or TinyDataset(), torch.device("cpu"))
        self.continuous, self.categorical = continuous, categorical
        self.calls: list[int] = []

    def encode(self, images: torch.Tensor) -> Representation:
        factors = images.reshape(len(images), -1).numpy().round().astype(np.int64)
        self.calls.append(len(factors))
        categorical = (self.categorical(factors) if self.categorical is not None
                       else np.zeros((len(factors), 0), dtype=np.int64))
        return Representation(np.asarray(self.continuous(factors), dtype=np.float64),
                              categorical)

    def train_step(self, images: torch.Tensor, factors: np.ndarray, step: int) -> dict[str, float]:
        raise NotImplementedError("a fixed encoder is not trained")

    def generate(self, n: int, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError("a fixed encoder does not generate")


def registered(name: str) -> Metric:
    return get_registry().metric(name)


def identity(factors: np.ndarray) -> np.ndarray:
    return factors.astype(np.float64)


def observer_for(continuous: Callable[[np.ndarray], np.ndarray],
                 categorical: Callable[[np.ndarray], np.ndarray] | None = None) -> Observer:
    return Observer(CodeModel(continuous, categorical), TinyDataset())
