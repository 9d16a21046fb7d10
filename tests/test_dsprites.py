"""dSprites: factor grid, procedural renderer, official-file loader and variants."""

from __future__ import annotations

import collections
import hashlib
import http.server
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import disentangle
from disentangle import cli
from disentangle.errors import UsageError
from disentangle_plugins.datasets import dsprites
from disentangle_plugins.datasets.dsprites import (
    FILE_NAMES,
    ColorDSprites,
    DSprites,
    NoisyDSprites,
    factor_value_tables,
    render,
)

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "dsprites"


@pytest.fixture
def ds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> DSprites:
    monkeypatch.delenv("DISENTANGLE_DATA", raising=False)
    return DSprites(data_dir=tmp_path)


def test_load_dataset_by_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DISENTANGLE_DATA", raising=False)
    ds = disentangle.load_dataset("dsprites", data_dir=tmp_path)
    assert isinstance(ds, DSprites) and ds.source == "renderer"
    assert ds.factor_sizes == (3, 6, 40, 32, 32)
    assert ds.num_combinations == 737_280


def test_images_are_binary_with_the_declared_shape(ds: DSprites) -> None:
    images, factors = ds.sample(16, np.random.default_rng(0))
    assert images.shape == (16, 1, 64, 64) and images.dtype == torch.float32
    assert set(images.unique().tolist()) <= {0.0, 1.0}
    assert (images.sum((1, 2, 3)) > 0).all()
    assert factors.shape == (16, 5)


def test_index_follows_the_official_formula(ds: DSprites) -> None:
    factors = ds.sample_factors(1000, np.random.default_rng(1))
    shape, scale, orientation, x, y = factors.T
    official = shape * 245_760 + scale * 40_960 + orientation * 1024 + x * 32 + y
    assert (ds.index(factors) == official).all()
    assert (ds.factors_of(official) == factors).all()
    assert ds.index(np.array([[2, 5, 39, 31, 31]]))[0] == 737_279


def test_factor_values_are_the_official_units(ds: DSprites) -> None:
    values = ds.factor_values(np.array([[0, 0, 0, 0, 0], [2, 5, 39, 31, 1], [1, 2, 1, 3, 30]]))
    np.testing.assert_allclose(values, [[1, 0.5, 0, 0, 0],
                                        [3, 1.0, 2 * np.pi, 1, 1 / 31],
                                        [2, 0.7, 2 * np.pi / 39, 3 / 31, 30 / 31]])


def test_placement_and_size_at_orientation_zero() -> None:
    # known from the real frames: a scale-1 square at position (0, 0) fills pixels 6..25 on
    # both axes, at scale 0.5 pixels 11..20; the ellipse spans columns 3..28 and rows 9..22;
    # posX moves columns, posY rows, by 32 pixels from 0 to 31
    images = render(np.array([[0, 5, 0, 0, 0], [0, 0, 0, 0, 0], [1, 5, 0, 0, 0],
                              [0, 5, 0, 31, 0], [0, 5, 0, 0, 31]])).bool().numpy()

    def box(image: np.ndarray) -> tuple[int, int, int, int]:
        rows, cols = np.nonzero(image)
        return rows.min(), rows.max(), cols.min(), cols.max()
    assert box(images[0]) == (6, 25, 6, 25) and images[0].sum() == 400
    assert box(images[1]) == (11, 20, 11, 20)
    assert box(images[2]) == (9, 22, 3, 28)
    assert box(images[3]) == (6, 25, 38, 57)
    assert box(images[4]) == (38, 57, 6, 25)


def test_rotation_is_counter_clockwise_on_screen() -> None:
    # orientation 5 is 0.806 rad (46.2 degrees): the ellipse's long axis, horizontal at
    # orientation 0, must rise to the right by that angle (rows grow downwards)
    image = render(np.array([[1, 5, 5, 16, 16]])).bool().numpy()[0]
    rows, cols = np.nonzero(image)
    up, right = -(rows - rows.mean()), cols - cols.mean()
    angle = 0.5 * np.degrees(np.arctan2(2 * (up * right).mean(), (right**2 - up**2).mean()))
    assert abs(angle - 46.2) < 2


def test_heart_points_down_with_a_notch_on_top() -> None:
    image = render(np.array([[2, 5, 0, 16, 16]])).bool().numpy()[0]
    rows, cols = np.nonzero(image)
    centre = (cols.min() + cols.max()) / 2
    assert image[rows.min():, int(centre)].argmax() > 0  # the centre column starts lower
    bottom = cols[rows == rows.max()]
    assert abs(bottom.mean() - centre) < 1 and len(bottom) <= 2  # a point at the bottom


def test_every_factor_changes_the_image(ds: DSprites) -> None:
    base = ds.sample_factors(50, np.random.default_rng(2))
    for k, size in enumerate(ds.factor_sizes):
        moved = base.copy()
        moved[:, k] = np.where(base[:, k] + 1 < size, base[:, k] + 1, base[:, k] - 1)
        changed = (ds.images(base) != ds.images(moved)).flatten(1).any(1)
        assert changed.all(), f"{ds.factor_names[k]} left {int((~changed).sum())} images unchanged"


@pytest.mark.skipif(not (REFERENCE / "gif_frames.npz").is_file(),
                    reason="the real reference frames (../shared/reference/dsprites) are absent")
def test_matches_real_frames_pixel_for_pixel() -> None:
    frames = np.load(REFERENCE / "gif_frames.npz")["frames"].astype(bool)
    # frames of the official animation and the factors they show (found by its sweeps)
    known = {5: (2, 5, 0, 0, 0), 30: (2, 5, 12, 0, 0), 75: (2, 5, 0, 0, 17),
             110: (2, 5, 0, 20, 31), 197: (1, 5, 0, 0, 0), 217: (1, 5, 7, 0, 0),
             258: (0, 2, 0, 0, 0), 275: (0, 5, 1, 0, 0), 293: (0, 5, 19, 0, 0)}
    images = render(np.array(list(known.values()))).bool().numpy()
    assert (images == frames[list(known)]).all()


def test_rendering_big_batches_matches_small_ones() -> None:
    factors = np.random.default_rng(3).integers(0, (3, 6, 40, 32, 32), (5000, 5))
    whole = render(factors)
    parts = torch.cat([render(factors[i:i + 7]) for i in range(0, 70, 7)])
    assert torch.equal(whole[:70], parts) and whole.shape == (5000, 64, 64)


def _whole_image_reference(factors: np.ndarray) -> np.ndarray:
    """dSprites drawn in numpy the slow way: the renderer's formulas in float32 evaluated at
    every pixel of the whole image, with no windows, gathers or row copies."""
    tables = factor_value_tables((3, 6, 40, 32, 32))
    heart = dsprites._HEART_TABLE.numpy()
    size = len(heart) - 2
    a, b = dsprites._ELLIPSE_AXES
    out = np.zeros((len(factors), 64, 64), bool)
    j = np.arange(64)
    for n, (shape, scale_k, angle_k, x_k, y_k) in enumerate(factors):
        scale, angle = tables[1][scale_k], tables[2][angle_k]
        cx, cy = 16 + 32 * tables[3][x_k], 16 + 32 * tables[4][y_k]
        x0, y0 = np.floor(cx) - 14, np.floor(cy) - 14
        dx = ((x0 - cx) + (j - x0 + 0.5)).astype(np.float32)
        dy = ((y0 - cy) + (j - y0 + 0.5)).astype(np.float32)
        cos = np.float32(np.cos(angle) / scale)
        sin = np.float32(np.sin(angle) / scale)
        u = (cos * dx)[None, :] + (-sin * dy)[:, None]
        v = (sin * dx)[None, :] + (cos * dy)[:, None]
        if shape == 0:
            out[n] = np.maximum(np.abs(u), np.abs(v)) <= dsprites._SQUARE_HALF
        elif shape == 1:
            out[n] = np.square(u * (1 / a)) + np.square(v * (1 / b)) <= 1.0
        else:
            row = np.minimum(np.abs(u) * (size / dsprites._HEART_WIDTH) + 0.5,
                             size + 1).astype(np.int64)
            out[n] = (v >= heart[row, 0]) & (v <= heart[row, 1])
    return out


def test_the_renderer_draws_the_whole_image_reference_pixel_for_pixel() -> None:
    """Every shape, scale and orientation, at random positions and at the four corners."""
    grid = np.stack(np.meshgrid(range(3), range(6), range(40), indexing="ij"), -1).reshape(-1, 3)
    rng = np.random.default_rng(5)
    positions = rng.integers(0, 32, (len(grid), 2))
    positions[:4] = [[0, 0], [0, 31], [31, 0], [31, 31]]
    factors = np.concatenate([grid, positions], axis=1)
    factors = np.concatenate([factors, factors[:: 37] * [1, 1, 1, 0, 0] + [0, 0, 0, 31, 31]])
    drawn = render(factors).bool().numpy()
    assert (drawn == _whole_image_reference(factors)).all()
    assert drawn.any(axis=(1, 2)).all()


def test_images_made_on_a_device_are_the_ones_made_on_the_cpu(ds) -> None:
    """The device path (placement on the CPU, pixels on the device) run on the CPU device
    object; an accelerator runs the same operations."""
    factors = ds.sample_factors(300, np.random.default_rng(1))
    assert torch.equal(ds.images_on(torch.device("cpu"), factors), ds.images(factors))
    images, sampled = ds.sample(50, np.random.default_rng(2), torch.device("cpu"))
    assert torch.equal(images, ds.images(sampled))


# ---- the official file -------------------------------------------------------------------

class TinySprites(DSprites):
    """dSprites on a small factor grid, so that a complete official-format file is small."""

    name = "tiny_dsprites"
    factor_sizes = (3, 2, 3, 2, 2)


def official_arrays(sizes: tuple[int, ...], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The arrays of an official-format file for the grid ``sizes``, with random images."""
    n = int(np.prod(sizes))
    grid = np.stack(np.unravel_index(np.arange(n), sizes), axis=1)
    tables = factor_value_tables(sizes)
    values = np.stack([t[grid[:, k]] for k, t in enumerate(tables)], axis=1)
    names = ("shape", "scale", "orientation", "posX", "posY")
    metadata = {"latents_sizes": np.array((1,) + sizes), "latents_names": ("color",) + names,
                "latents_possible_values": {"color": np.array([1.0]),
                                            **dict(zip(names, tables))},
                "title": "dSprites dataset"}
    return {"imgs": rng.integers(0, 2, (n, 64, 64), dtype=np.uint8),
            "latents_classes": np.concatenate([np.zeros((n, 1), np.int64), grid], axis=1),
            "latents_values": np.concatenate([np.ones((n, 1)), values], axis=1),
            "metadata": np.array(metadata, dtype=object)}


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def test_official_npz_is_served_bit_packed(tmp_path: Path) -> None:
    arrays = official_arrays(TinySprites.factor_sizes, np.random.default_rng(4))
    path = write_npz(tmp_path / "dsprites" / FILE_NAMES[0], arrays)
    for data_dir in (tmp_path, path):  # the folder holding it, or the file itself
        ds = TinySprites(data_dir=data_dir)
        assert ds.source == str(path)
        assert ds.packed.shape == (len(arrays["imgs"]), 64, 8)
        assert isinstance(ds.packed, np.memmap)  # mapped from the cache beside the file
        factors = ds.sample_factors(20, np.random.default_rng(5))
        expected = torch.from_numpy(arrays["imgs"][ds.index(factors)]).float().unsqueeze(1)
        assert torch.equal(ds.images(factors), expected)
    assert path.with_name(path.name + ".bits.npy").is_file()


def _corrupt(kind: str, path: Path) -> str:
    """Write a file damaged in one way; return the words its error message must contain."""
    arrays = official_arrays(TinySprites.factor_sizes, np.random.default_rng(6))
    if kind == "not a zip":
        path.write_bytes(b"this is not an archive" * 100)
        return "not an .npz archive"
    if kind == "truncated":
        write_npz(path, arrays)
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])
        return "not an .npz archive"
    if kind == "missing key":
        del arrays["metadata"]
        write_npz(path, arrays)
        return "missing key(s) metadata"
    if kind == "image shape":
        arrays["imgs"] = arrays["imgs"][:, :32]
        write_npz(path, arrays)
        return "'imgs' must be uint8 [72, 64, 64]"
    if kind == "image values":
        arrays["imgs"][7, 3, 3] = 255
        write_npz(path, arrays)
        return "'imgs' must hold 0 or 1"
    if kind == "order":
        arrays["latents_classes"] = arrays["latents_classes"][::-1]
        write_npz(path, arrays)
        return "not in the official order"
    if kind == "metadata":
        arrays["metadata"][()]["latents_sizes"] = np.array([1, 3, 6, 40, 32, 32])
        write_npz(path, arrays)
        return "metadata latents_sizes"
    if kind == "huge metadata":  # only allowed numpy calls, asking for 4 TiB
        arrays["metadata"] = np.array(_HugeArray(), dtype=object)
        write_npz(path, arrays)
        return "asks for more memory than this machine has"
    if kind == "unsafe metadata":
        arrays["metadata"] = np.array(collections.OrderedDict(a=1), dtype=object)
        write_npz(path, arrays)
        return "refusing to load collections.OrderedDict"
    raise AssertionError(kind)


class _HugeArray:
    """Pickles as numpy's own array constructor called for a 4 TiB array."""

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct

        return (_reconstruct, (np.ndarray, (2**42,), b"b"))


@pytest.mark.parametrize("kind", ["not a zip", "truncated", "missing key", "image shape",
                                  "image values", "order", "metadata", "unsafe metadata",
                                  "huge metadata"])
def test_a_bad_file_is_refused_with_a_clear_message(kind: str, tmp_path: Path) -> None:
    path = tmp_path / FILE_NAMES[0]
    words = _corrupt(kind, path)
    with pytest.raises(UsageError) as error:
        TinySprites(data_dir=tmp_path)
    assert words in str(error.value) and str(path) in str(error.value)
    assert not path.with_name(path.name + ".bits.npy").exists()


def test_a_bad_file_fails_the_cli_with_exit_code_2(workdir: Path, capsys) -> None:
    path = workdir / FILE_NAMES[0]
    path.write_bytes(b"\0" * 1000)
    code = cli.main(["run", "infogan", "--dataset", "dsprites", "--data-dir", str(path),
                     "--steps", "1", "--no-progress"])
    assert code == 2 and "not an .npz archive" in capsys.readouterr().err


def test_official_hdf5_is_served(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    arrays = official_arrays(TinySprites.factor_sizes, np.random.default_rng(13))
    path = tmp_path / FILE_NAMES[1]
    with h5py.File(path, "w") as f:
        f["imgs"] = arrays["imgs"]
        f["latents/classes"] = arrays["latents_classes"]
        f["latents/values"] = arrays["latents_values"]
    ds = TinySprites(data_dir=tmp_path)
    assert ds.source == str(path)
    factors = ds.sample_factors(10, np.random.default_rng(14))
    expected = torch.from_numpy(arrays["imgs"][ds.index(factors)]).float().unsqueeze(1)
    assert torch.equal(ds.images(factors), expected)
    with h5py.File(path, "a") as f:
        del f["latents/values"]
    with pytest.raises(UsageError, match="missing key"):
        TinySprites(data_dir=tmp_path)


def test_hdf5_needs_h5py(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / FILE_NAMES[1]
    path.write_bytes(b"\x89HDF\r\n\x1a\n")
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(UsageError, match="needs h5py"):
        DSprites(data_dir=path)


def test_missing_named_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        DSprites(data_dir=tmp_path / "nowhere.npz")


# ---- download -----------------------------------------------------------------------------

@pytest.fixture
def served(tmp_path: Path):
    """A small file served over HTTP on the loopback interface: ``(url, bytes)``."""
    payload = np.random.default_rng(7).bytes(300_000)
    (tmp_path / "served").mkdir()
    (tmp_path / "served" / "file.npz").write_bytes(payload)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path / "served"), **kwargs)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/file.npz", payload
    server.shutdown()
    server.server_close()


def test_fetch_downloads_and_checks_the_file(served, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    url, payload = served
    monkeypatch.setattr(dsprites, "URL", url)
    monkeypatch.setattr(dsprites, "MD5", hashlib.md5(payload).hexdigest())
    data = tmp_path / "data"
    assert cli.main(["data", "fetch", "dsprites", "--data-dir", str(data)]) == 0
    assert (data / "dsprites" / FILE_NAMES[0]).read_bytes() == payload
    assert "files ready" in capsys.readouterr().out


def test_fetch_with_a_wrong_checksum_leaves_nothing(served, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys) -> None:
    url, _ = served
    monkeypatch.setattr(dsprites, "URL", url)
    data = tmp_path / "data"
    assert cli.main(["data", "fetch", "dsprites", "--data-dir", str(data)]) == 2
    assert "checksum mismatch" in capsys.readouterr().err
    assert list((data / "dsprites").iterdir()) == []


# ---- variants -----------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [ColorDSprites, NoisyDSprites])
def test_variants_are_registered_with_three_channels(cls, tmp_path: Path) -> None:
    ds = disentangle.load_dataset(cls.name, data_dir=tmp_path)
    assert type(ds) is cls and ds.image_shape == (3, 64, 64) and not ds.deterministic
    images, factors = ds.sample(32, np.random.default_rng(8))
    assert images.shape == (32, 3, 64, 64) and images.dtype == torch.float32
    assert images.min() >= 0 and images.max() <= 1
    with pytest.raises(ValueError, match="needs an rng"):
        ds.images(factors)


def test_color_dsprites_paints_each_sprite_one_colour(tmp_path: Path) -> None:
    ds = ColorDSprites(data_dir=tmp_path)
    factors = ds.sample_factors(64, np.random.default_rng(9))
    images = ds.images(factors, np.random.default_rng(10))
    sprites = render(factors).bool()
    for image, sprite in zip(images, sprites):
        assert (image[:, ~sprite] == 0).all()
        colours = image[:, sprite]  # [3, pixels]
        assert (colours == colours[:, :1]).all()
        assert (colours >= 0.5).all() and (colours <= 1).all()
    colours = torch.stack([image[:, sprite][:, 0] for image, sprite in zip(images, sprites)])
    assert colours.std(0).min() > 0.05  # each channel's colour varies between images


def test_noisy_dsprites_keeps_white_sprites_on_noise(tmp_path: Path) -> None:
    ds = NoisyDSprites(data_dir=tmp_path)
    factors = ds.sample_factors(16, np.random.default_rng(11))
    images = ds.images(factors, np.random.default_rng(12))
    sprites = render(factors).bool()
    channels_first = images.permute(1, 0, 2, 3)  # [3, n, 64, 64]
    assert (channels_first[:, sprites] == 1).all()
    background = channels_first[:, ~sprites]
    assert abs(background.mean().item() - 0.5) < 0.01
    assert abs(background.var().item() - 1 / 12) < 0.005
