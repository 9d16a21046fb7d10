"""The labelled image datasets: the IDX reader, MNIST / Fashion-MNIST, digits, and fetching."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import disentangle
from disentangle.errors import UsageError
from disentangle.idx import read_idx
from disentangle_plugins.datasets.digits import Digits
from disentangle_plugins.datasets.mnist import MNIST, FashionMNIST

TYPE_CODES = {np.dtype("uint8"): 0x08, np.dtype("int16"): 0x0B, np.dtype("float32"): 0x0D}


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file's bytes, built by hand from the format's definition."""
    header = bytes([0, 0, TYPE_CODES[array.dtype], array.ndim])
    sizes = struct.pack(f">{array.ndim}I", *array.shape)
    return header + sizes + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_split(folder: Path, pixels: np.ndarray, labels: np.ndarray, prefix: str = "train",
                gz: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in ((f"{prefix}-images-idx3-ubyte", pixels),
                        (f"{prefix}-labels-idx1-ubyte", labels)):
        data = idx_bytes(array)
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)


@pytest.fixture
def small() -> tuple[np.ndarray, np.ndarray]:
    """20 random 28x28 images; labels skewed: ten 3s, two each of 0, 1, 5, 7, 9."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    pixels[0] = 0
    pixels[1] = 255
    labels = np.array([3] * 10 + [0, 0, 1, 1, 5, 5, 7, 7, 9, 9], dtype=np.uint8)
    return pixels, labels


@pytest.fixture
def mnist_dir(tmp_path, small) -> Path:
    write_split(tmp_path / "mnist", *small)
    return tmp_path


def rows_of(images: torch.Tensor, pixels: np.ndarray, pixel_max: int = 255) -> np.ndarray:
    """The data row each returned image is an exact copy of."""
    as_bytes = torch.round(images[:, 0] * pixel_max).to(torch.uint8).numpy()
    flat = pixels.reshape(len(pixels), -1)
    rows = [np.flatnonzero((flat == image.reshape(-1)).all(axis=1)) for image in as_bytes]
    assert all(len(r) == 1 for r in rows), "an image that is not exactly one of the data's"
    return np.array([r[0] for r in rows])


# --- the IDX reader -------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("array", [
    np.arange(20 * 3 * 4, dtype=np.uint8).reshape(20, 3, 4),
    np.array([-300, 0, 7, 32767], dtype=np.int16),
    np.array([[1.5, -2.25], [1e-3, 3e8]], dtype=np.float32),
], ids=["uint8", "int16", "float32"])
def test_read_idx_returns_the_written_array(tmp_path, array, gz):
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if gz else data)
    out = read_idx(path)
    assert out.dtype == array.dtype and out.dtype.isnative
    np.testing.assert_array_equal(out, array)


@pytest.mark.parametrize("mangle, problem", [
    (lambda b: b"\x01" + b[1:], "bad magic number 0x01000803"),
    (lambda b: b[:2] + b"\x07" + b[3:], "unknown element type 0x07"),
    (lambda b: b[:3] + b"\x00", "zero dimensions"),
    (lambda b: b[:10], "truncated header"),
    (lambda b: b[:-1], "truncated: shape [2, 3, 4] needs 24 data bytes, found 23"),
    (lambda b: b + b"\x00\x00", "2 unexpected bytes after the data"),
    (lambda b: b[:2], "too short"),
])
def test_read_idx_rejects_a_corrupt_file_by_name(tmp_path, mangle, problem):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(mangle(idx_bytes(np.zeros((2, 3, 4), dtype=np.uint8))))
    with pytest.raises(UsageError, match="bad-idx3-ubyte is not a valid IDX file") as info:
        read_idx(path)
    assert problem in str(info.value)


def test_read_idx_rejects_a_broken_gzip_file(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(50, dtype=np.uint8)))[:-12])
    with pytest.raises(UsageError, match="cannot read .*labels.gz"):
        read_idx(path)


# --- MNIST and Fashion-MNIST ----------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_reads_the_training_split_exactly(tmp_path, small, gz):
    write_split(tmp_path / "mnist", *small, gz=gz)
    write_split(tmp_path / "mnist", small[0][:5], small[1][:5], prefix="t10k", gz=gz)
    ds = MNIST(tmp_path)
    assert len(ds) == 20 and ds.image_shape == (1, 28, 28)
    np.testing.assert_array_equal(ds.pixels, small[0])
    np.testing.assert_array_equal(ds.labels, small[1])
    assert len(MNIST(tmp_path, split="test")) == 5


def test_data_dir_comes_from_the_environment(mnist_dir, monkeypatch):
    monkeypatch.setenv("DISENTANGLE_DATA", str(mnist_dir))
    assert len(disentangle.load_dataset("mnist")) == 20


def test_images_have_the_requested_label(mnist_dir, small):
    pixels, labels = small
    ds = MNIST(mnist_dir)
    wanted = np.array([3, 0, 9, 9, 1, 5, 7, 0] * 50)[:, None]
    images = ds.images(wanted, np.random.default_rng(1))
    assert images.shape == (400, 1, 28, 28) and images.dtype == torch.float32
    rows = rows_of(images, pixels)
    np.testing.assert_array_equal(labels[rows], wanted[:, 0])
    # every image of each label gets drawn, not always the same one
    assert set(rows) == set(np.flatnonzero(np.isin(labels, [3, 0, 9, 1, 5, 7])))


def test_images_are_reproducible_from_the_rng(mnist_dir):
    ds = MNIST(mnist_dir)
    factors = np.array([[3]] * 30)
    first = ds.images(factors, np.random.default_rng(5))
    assert torch.equal(first, ds.images(factors, np.random.default_rng(5)))
    assert not torch.equal(first, ds.images(factors, np.random.default_rng(6)))


def test_a_batch_off_the_cpu_is_cut_from_one_copy_of_the_set_there(mnist_dir):
    # "meta" stands in for an accelerator: tensors with shapes but no data
    ds = MNIST(mnist_dir)
    images, labels = ds.sample(16, np.random.default_rng(0), "meta")
    assert images.device.type == "meta" and images.shape == (16, 1, 28, 28)
    _, cpu_labels = ds.sample(16, np.random.default_rng(0))
    np.testing.assert_array_equal(labels, cpu_labels)
    ds.images_on(torch.device("meta"), labels, np.random.default_rng(1))
    assert list(ds._on_device) == [torch.device("meta")]  # made once, kept
    assert ds._on_device[torch.device("meta")].shape == (len(ds), 28, 28)


def test_images_refuse_labels_without_images_and_a_missing_rng(mnist_dir):
    ds = MNIST(mnist_dir)
    with pytest.raises(ValueError, match=r"no image has digit \[2, 4\]"):
        ds.images(np.array([[3], [2], [4], [2]]), np.random.default_rng(0))
    with pytest.raises(ValueError, match="needs an rng"):
        ds.images(np.array([[3]]))
    with pytest.raises(ValueError, match="out of range"):
        ds.images(np.array([[10]]), np.random.default_rng(0))


def test_sample_draws_real_images_with_the_data_label_frequencies(mnist_dir, small):
    pixels, labels = small
    ds = MNIST(mnist_dir)
    images, factors = ds.sample(4000, np.random.default_rng(2))
    assert images.shape == (4000, 1, 28, 28) and factors.shape == (4000, 1)
    assert factors.dtype == np.int64
    assert images.min() == 0.0 and images.max() == 1.0
    np.testing.assert_array_equal(labels[rows_of(images, pixels)], factors[:, 0])
    # half the data are 3s: a uniform label draw would give 10%
    assert abs((factors == 3).mean() - 0.5) < 0.03
    drawn = ds.sample_factors(20000, np.random.default_rng(3))
    assert drawn.shape == (20000, 1)
    np.testing.assert_allclose(np.bincount(drawn[:, 0], minlength=10) / 20000,
                               np.bincount(labels, minlength=10) / 20, atol=0.01)


def test_fashion_mnist_has_its_own_folder_and_factor_name(mnist_dir, small):
    with pytest.raises(UsageError, match="fashion_mnist"):
        FashionMNIST(mnist_dir)
    write_split(mnist_dir / "fashion_mnist", *small, gz=True)
    ds = disentangle.load_dataset("fashion_mnist", data_dir=mnist_dir)
    assert isinstance(ds, FashionMNIST)
    assert ds.factor_names == ("item",) and ds.categorical_factors == ("item",)
    assert ds.factor_sizes == (10,) and not ds.deterministic


def test_missing_files_say_where_they_were_looked_for(tmp_path, monkeypatch):
    with pytest.raises(UsageError) as info:
        MNIST(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "mnist" / "train-images-idx3-ubyte") in message
    assert "disentangle data fetch mnist" in message
    monkeypatch.delenv("DISENTANGLE_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(UsageError) as info:
        MNIST()  # no folder given: the default data home, where `data fetch` puts files
    assert str(tmp_path / "home/.cache/disentangle/data/mnist/train-images-idx3-ubyte") \
        in str(info.value)


def test_unknown_split_is_a_usage_error(mnist_dir):
    with pytest.raises(UsageError, match="unknown split 'valid'"):
        MNIST(mnist_dir, split="valid")


@pytest.mark.parametrize("pixels, labels, problem", [
    (np.zeros((4, 5, 5), np.uint8), np.zeros(4, np.uint8), r"shape \[N, 28, 28\]"),
    (np.zeros((4, 28, 28), np.uint8), np.zeros(3, np.uint8), "has 3 labels but"),
    (np.zeros((4, 28, 28), np.uint8), np.array([0, 1, 12, 2], np.uint8), "label 12"),
    (np.zeros((4, 28, 28), np.uint8), np.zeros(4, np.int16), "uint8 vector"),
])
def test_files_of_the_wrong_content_are_rejected(tmp_path, pixels, labels, problem):
    write_split(tmp_path / "mnist", pixels, labels)
    with pytest.raises(UsageError, match=problem):
        MNIST(tmp_path)


# --- scikit-learn digits --------------------------------------------------------------------


def test_digits_is_the_bundled_scikit_learn_data():
    from sklearn.datasets import load_digits

    ds = disentangle.load_dataset("digits")
    assert len(ds) == 1797 and ds.image_shape == (1, 8, 8) and ds.factor_names == ("digit",)
    data = load_digits()
    images = ds.to_tensor(np.arange(1797))
    assert images.min() == 0.0 and images.max() == 1.0
    np.testing.assert_allclose(images.reshape(1797, 64).numpy(), data.data / 16, atol=1e-7)
    np.testing.assert_array_equal(ds.labels, data.target)


def test_digits_images_and_samples_match_their_labels():
    ds = Digits()
    wanted = np.arange(10).repeat(20)[:, None]
    rows = rows_of(ds.images(wanted, np.random.default_rng(0)), ds.pixels, 16)
    np.testing.assert_array_equal(ds.labels[rows], wanted[:, 0])
    images, factors = ds.sample(64, np.random.default_rng(1))
    assert images.shape == (64, 1, 8, 8) and factors.shape == (64, 1)
    np.testing.assert_array_equal(ds.labels[rows_of(images, ds.pixels, 16)], factors[:, 0])


# --- fetching -------------------------------------------------------------------------------


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    """An HTTP server on 127.0.0.1 serving ``tmp_path / "served"``; yields its base URL."""
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(QuietHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def serve_small_mnist(served: Path, small) -> dict[str, str]:
    write_split(served, *small, gz=True)
    write_split(served, small[0][:5], small[1][:5], prefix="t10k", gz=True)
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(served.glob("*.gz"))}


def test_fetch_downloads_checks_and_keeps_the_files(tmp_path, server, small, monkeypatch):
    checksums = serve_small_mnist(tmp_path / "served", small)
    assert len(checksums) == 4
    # the first mirror refuses connections: fetch falls back to the next one
    monkeypatch.setattr(MNIST, "mirrors", ("http://127.0.0.1:1/nothing", server + "/"))
    monkeypatch.setattr(MNIST, "checksums", checksums)
    data = tmp_path / "data"
    assert MNIST.fetch(data) == data / "mnist"
    for name, digest in checksums.items():
        assert hashlib.sha256((data / "mnist" / name).read_bytes()).hexdigest() == digest
    ds = MNIST(data)
    np.testing.assert_array_equal(ds.pixels, small[0])
    np.testing.assert_array_equal(ds.labels, small[1])
    # files already present with the right checksum are not downloaded again
    monkeypatch.setattr(MNIST, "mirrors", ("http://127.0.0.1:1/nothing",))
    assert MNIST.fetch(data) == data / "mnist"


def test_fetch_with_a_checksum_mismatch_leaves_no_file(tmp_path, server, small, monkeypatch):
    checksums = serve_small_mnist(tmp_path / "served", small)
    checksums["train-labels-idx1-ubyte.gz"] = "0" * 64
    monkeypatch.setattr(FashionMNIST, "mirrors", (server,))
    monkeypatch.setattr(FashionMNIST, "checksums", checksums)
    data = tmp_path / "data"
    with pytest.raises(UsageError, match="train-labels-idx1-ubyte.gz.*checksum mismatch"):
        FashionMNIST.fetch(data)
    folder = data / "fashion_mnist"
    assert not (folder / "train-labels-idx1-ubyte.gz").exists()
    assert not list(folder.glob("*.part"))
