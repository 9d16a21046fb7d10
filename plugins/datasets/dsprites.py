"""dSprites (Matthey et al. 2017): 2D sprites from five discrete factors, rendered on demand.

The official dataset holds all 737,280 combinations of shape (square, ellipse, heart), scale
(6 values in [0.5, 1]), orientation (40 values in [0, 2 pi]), posX and posY (32 values each
in [0, 1]) as 64x64 binary images, in row-major factor order (posY varies fastest). This
module draws any combination procedurally, in vectorised batches, so neither the download nor
the 2.8 GB array is needed. Its geometry was calibrated on real frames of the official data
(``benchmarks/dsprites_fidelity.py`` measures the match):

* a sprite's centre is at pixel coordinate ``16 + 32 * pos`` on each axis (pixel ``i``
  covers ``[i, i + 1)``, column = posX, row = posY);
* orientation ``theta`` turns the sprite counter-clockwise on screen;
* a pixel is on when its centre lies inside the scaled, rotated shape;
* at scale 1 the square's side and the heart's width are 19.2 pixels (0.3 of the image), the
  ellipse's semi-axes are 12.77 and 7.21 pixels (long axis horizontal at orientation 0); the
  heart is the classic heart curve (x = 16 sin^3 t, y = 13 cos t - 5 cos 2t - 2 cos 3t -
  cos 4t) with the point down, its coefficients refined on the frames.

Where the user has the official file (``disentangle data fetch dsprites``, or ``--data-dir`` /
``$DISENTANGLE_DATA`` naming the ``.npz``/``.hdf5`` or the folder holding it), its images are
served instead, bit-packed and memory-mapped (see :mod:`dsprites_file`).

The variants of disentanglement_lib are registered as their own datasets:
``color_dsprites`` (each image's sprite in a random colour, every channel uniform in
[0.5, 1]) and ``noisy_dsprites`` (white sprite on a background of uniform noise in [0, 1]).
"""

from __future__ import annotations

import contextlib
import functools
from abc import abstractmethod
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from disentangle import hookimpl
from disentangle.datasets import FactorDataset
from disentangle.download import fetch_file
from disentangle_plugins.datasets import dsprites_file

#: where ``disentangle data fetch dsprites`` downloads the official archive from
URL = ("https://github.com/deepmind/dsprites-dataset/raw/master/"
       "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz")
#: the archive's published MD5 (the only checksum the dataset's users publish for it)
MD5 = "7da33b31b13a06f4b04a70402ce90c2e"
#: file names of the official release, as the plugin looks for them in the data folder
FILE_NAMES = ("dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz",
              "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5")

# ---- geometry at scale 1, in pixels (see the module docstring) -----------------------------
_CENTRE_OFFSET = 16.0
_CENTRE_RANGE = 32.0
#: half the square's side: the frames put it in (9.5966, 9.5998]
_SQUARE_HALF = 9.598
#: ellipse semi-axes (horizontal, vertical at orientation 0)
_ELLIPSE_AXES = (12.7658, 7.2133)
#: heart boundary for t in [0, pi] (mirrored for u < 0), v pointing down:
#: u = sum b_k sin(k t) over k = 1, 3, 5 and v = v0 - sum a_k cos(k t) over k = 1..4
_HEART_U = (7.199, -2.393, 0.0025)
_HEART_V = (-1.44, 8.6075, -3.3075, -1.325, -0.6625)
#: side of the square window of pixels rendered around each sprite centre; it holds every
#: sprite (the square's half diagonal, 13.58 pixels, is the largest reach)
_WINDOW = 29


def _heart_table(size: int = 1 << 16) -> tuple[float, torch.Tensor]:
    """The heart as two functions of ``|u|``, its top and bottom edge ``v``, on a fine grid.

    Every vertical line meets the heart in one interval (the notch is on the top edge), so a
    point is inside when ``|u| <= width`` and ``top(|u|) <= v <= bottom(|u|)``. Returns the
    width and a ``[size + 2, 2]`` table of (top, bottom) at ``|u| = width * k / size``; its
    last row, (+inf, -inf), stands for every ``|u|`` beyond the width. The grid step is
    1.5e-4 pixels at scale 1, well below the precision the frames pin the outline to.
    """
    t = np.linspace(0.0, np.pi, 400_001)
    u = sum(b * np.sin(k * t) for k, b in zip((1, 3, 5), _HEART_U))
    v = _HEART_V[0] - sum(a * np.cos(k * t) for k, a in enumerate(_HEART_V[1:], start=1))
    side = int(u.argmax())
    width = float(u[side])
    grid = np.linspace(0.0, width, size + 1)
    top = np.interp(grid, u[:side + 1], v[:side + 1])
    bottom = np.interp(grid, u[side:][::-1], v[side:][::-1])
    table = np.concatenate([np.stack([top, bottom], axis=1), [[np.inf, -np.inf]]])
    return width, torch.from_numpy(table).float()


_HEART_WIDTH, _HEART_TABLE = _heart_table()


@functools.lru_cache(maxsize=8)
def factor_value_tables(factor_sizes: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """The real value of every class of each factor, as in the official metadata (read-only).

    shape 1, 2, 3 (square, ellipse, heart); scale ``linspace(0.5, 1)``; orientation
    ``linspace(0, 2 pi)`` in radians; posX and posY ``linspace(0, 1)``.
    """
    shapes, scales, orientations, xs, ys = factor_sizes
    tables = (np.arange(1.0, shapes + 1), np.linspace(0.5, 1.0, scales),
              np.linspace(0.0, 2 * np.pi, orientations), np.linspace(0.0, 1.0, xs),
              np.linspace(0.0, 1.0, ys))
    for table in tables:
        table.flags.writeable = False
    return tables


@functools.lru_cache(maxsize=8)
def _value_tensors(factor_sizes: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
    return tuple(torch.tensor(table) for table in factor_value_tables(factor_sizes))


#: images drawn per step of :func:`render`; keeps its temporaries in the CPU caches
_CHUNK = 2048


def render(factors: np.ndarray, factor_sizes: tuple[int, ...] = (3, 6, 40, 32, 32),
           device: torch.device | str | None = None) -> torch.Tensor:
    """Draw sprites for validated factor rows ``[n, 5]``: float tensor ``[n, 64, 64]`` of 0/1,
    on ``device`` (default: the CPU).

    Only a 29 x 29 window around each sprite is evaluated, with an analytic inside test per
    shape vectorised over the batch; windows are then shifted into place (a gather along
    columns, a row copy), so no per-pixel scatter is needed. Each sprite's placement and
    rotation (a few numbers) are computed on the CPU and only the per-pixel work runs on
    ``device``; that work is additions, multiplications, comparisons and a table look-up,
    which IEEE arithmetic makes exact, so every device draws the same pixels.
    """
    device = torch.device(device or "cpu")
    f = torch.from_numpy(np.ascontiguousarray(factors, dtype=np.int64))
    with _one_thread():
        out = torch.zeros(len(f) * 64, 64, device=device)
        for start in range(0, len(f), _CHUNK):
            _render_chunk(f[start:start + _CHUNK], out[start * 64:(start + _CHUNK) * 64],
                          factor_sizes)
    return out.view(len(f), 64, 64)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch single-threaded inside the block: rendering is many small element-wise
    operations on cache-sized chunks, which threads slow down (7-10 times on a busy 2-core
    machine, where a thread that waits for a descheduled sibling stalls every operation)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@functools.lru_cache(maxsize=4)
def _heart_table_on(device: torch.device) -> torch.Tensor:
    return _HEART_TABLE.to(device)


def _render_chunk(f: torch.Tensor, out: torch.Tensor, factor_sizes: tuple[int, ...]) -> None:
    """Draw factor rows ``f`` (on the CPU) into ``out`` (``[n * 64, 64]``, zero, on any
    device)."""
    device = out.device
    tables = _value_tensors(factor_sizes)
    scale = tables[1][f[:, 1]]
    angle = tables[2][f[:, 2]]
    cx = _CENTRE_OFFSET + _CENTRE_RANGE * tables[3][f[:, 3]]
    cy = _CENTRE_OFFSET + _CENTRE_RANGE * tables[4][f[:, 4]]
    x0 = torch.floor(cx).long() - _WINDOW // 2
    y0 = torch.floor(cy).long() - _WINDOW // 2
    steps = torch.arange(_WINDOW, dtype=torch.float64) + 0.5
    dx = ((x0.double() - cx)[:, None] + steps).float().to(device)  # [n, W] pixel centres
    dy = ((y0.double() - cy)[:, None] + steps).float().to(device)
    cos = (torch.cos(angle) / scale).float()[:, None].to(device)
    sin = (torch.sin(angle) / scale).float()[:, None].to(device)
    shapes, x0, y0 = f[:, 0].to(device), x0.to(device), y0.to(device)
    # sprite-frame coordinates of pixel (row i, column j): u = cos dx_j - sin dy_i,
    # v = sin dx_j + cos dy_i (turning the sprite counter-clockwise on screen, rows down)
    u_col, u_row = cos * dx, -sin * dy
    v_col, v_row = sin * dx, cos * dy
    for shape, inside in enumerate((_inside_square, _inside_ellipse, _inside_heart)):
        rows = (shapes == shape).nonzero().squeeze(1)
        if len(rows):
            u = u_col[rows, None, :] + u_row[rows, :, None]
            v = v_col[rows, None, :] + v_row[rows, :, None]
            _place(out, inside(u, v), rows, x0[rows], y0[rows])


def _place(out: torch.Tensor, window: torch.Tensor, rows: torch.Tensor, x0: torch.Tensor,
           y0: torch.Tensor) -> None:
    """Write windows ``[m, W, W]`` into images ``rows`` of ``out`` (``[n * 64, 64]``) with
    their top-left corners at ``(y0, x0)``."""
    m, device = len(rows), out.device
    padded = torch.zeros(m, _WINDOW, _WINDOW + 1, device=device)  # last column: zero, outside
    padded[:, :, :_WINDOW] = window
    columns = torch.arange(64, device=device) - x0[:, None]
    columns = columns.masked_fill_((columns < 0) | (columns >= _WINDOW), _WINDOW)
    wide = padded.gather(2, columns[:, None, :].expand(m, _WINDOW, 64))
    destination = (rows * 64 + y0)[:, None] + torch.arange(_WINDOW, device=device)
    out.index_copy_(0, destination.view(-1), wide.view(-1, 64))


def _inside_square(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.maximum(u.abs_(), v.abs_()) <= _SQUARE_HALF


def _inside_ellipse(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    a, b = _ELLIPSE_AXES
    return u.mul_(1 / a).square_().add_(v.mul_(1 / b).square_()) <= 1.0


def _inside_heart(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    size = len(_HEART_TABLE) - 2
    row = u.abs_().mul_(size / _HEART_WIDTH).add_(0.5).clamp_(max=size + 1).long()
    edges = _heart_table_on(u.device)[row]
    return (v >= edges[..., 0]) & (v <= edges[..., 1])


class DSprites(FactorDataset):
    """dSprites: binary 64x64 sprites in the official factor order, drawn on demand.

    ``factor_values`` gives real units; with the official file in the data folder its images
    are served instead of rendered (``source`` says which).
    """

    name = "dsprites"
    factor_names = ("shape", "scale", "orientation", "posX", "posY")
    factor_sizes = (3, 6, 40, 32, 32)
    image_shape = (1, 64, 64)
    categorical_factors = ("shape",)

    def __init__(self, data_dir: str | Path | None = None):
        super().__init__(data_dir)
        path = dsprites_file.find(self.data_dir, FILE_NAMES)
        #: bit-packed official images ``[N, 64, 8]`` (memory-mapped), or None when rendering
        self.packed: np.ndarray | None = None
        #: where the images come from: ``"renderer"`` or the official file's path
        self.source = "renderer"
        if path is not None:
            self.packed = dsprites_file.load(path, self.factor_names, self.factor_sizes,
                                             factor_value_tables(self.factor_sizes))
            self.source = str(path)

    def factor_values(self, factors: np.ndarray) -> np.ndarray:
        """Real values of factor rows ``[n, 5]``: float64 ``[n, 5]`` (shape 1-3, scale,
        orientation in radians, posX and posY in [0, 1]), as in the official metadata."""
        factors = self.check_factors(factors)
        tables = factor_value_tables(self.factor_sizes)
        return np.stack([table[factors[:, k]] for k, table in enumerate(tables)], axis=1)

    def sprites(self, factors: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
        """Binary sprites for factor rows ``[n, 5]``: float tensor ``[n, 1, 64, 64]`` in
        {0, 1}, made on ``device``: rendered there, or, from the official file, its packed
        bits sent there (1/32 of the floats) and unpacked."""
        factors = self.check_factors(factors)
        if self.packed is None:
            return render(factors, self.factor_sizes, device).unsqueeze(1)
        packed = torch.from_numpy(self.packed[self.index(factors)]).to(device)
        bits = packed[..., None] >> torch.arange(7, -1, -1, dtype=torch.uint8, device=device)
        with _one_thread():
            return (bits & 1).view(len(factors), 1, 64, 64).float()

    def images(self, factors: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        """Binary sprites for factor rows ``[n, 5]``: float tensor ``[n, 1, 64, 64]`` in {0, 1}."""
        return self.sprites(factors)

    def images_on(self, device: torch.device, factors: np.ndarray,
                  rng: np.random.Generator | None = None) -> torch.Tensor:
        return self.sprites(factors, device)

    @classmethod
    def fetch(cls, data_dir: Path) -> Path:
        """Download the official ``.npz`` into ``<data_dir>/dsprites/`` (MD5-checked, atomic)."""
        return fetch_file(cls.name, [URL], Path(data_dir) / "dsprites" / FILE_NAMES[0], MD5,
                          "md5")


class _ColouredDSprites(DSprites):
    """dSprites with three channels and per-image randomness; needs an ``rng`` for images."""

    image_shape = (3, 64, 64)
    deterministic = False

    def images(self, factors: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        return self.images_on(torch.device("cpu"), factors, rng)

    def images_on(self, device: torch.device, factors: np.ndarray,
                  rng: np.random.Generator | None = None) -> torch.Tensor:
        if rng is None:
            raise ValueError(f"{self.name}: images(factors) needs an rng for the random "
                             "colours of each image")
        sprites = self.sprites(factors, device)
        with _one_thread():
            return self.colour(sprites, rng)

    @abstractmethod
    def colour(self, sprites: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Turn binary sprites ``[n, 1, 64, 64]`` into this variant's RGB images, on the
        sprites' device; the random draws come from ``rng`` on the host, so a run's images
        are the same on every device."""


class ColorDSprites(_ColouredDSprites):
    """color-dSprites (disentanglement_lib): each sprite in a random colour, on black.

    Every channel of the colour is uniform in [0.5, 1], drawn per image.
    """

    name = "color_dsprites"

    def colour(self, sprites: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        colours = torch.from_numpy(rng.uniform(0.5, 1.0, (len(sprites), 3, 1, 1))).float()
        return sprites * colours.to(sprites.device)


class NoisyDSprites(_ColouredDSprites):
    """noisy-dSprites (disentanglement_lib): white sprites on a background of uniform noise.

    The noise is independent per pixel and channel, uniform in [0, 1].
    """

    name = "noisy_dsprites"

    def colour(self, sprites: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        noise = torch.from_numpy(rng.random((len(sprites), 3, 64, 64), dtype=np.float32))
        return torch.maximum(noise.to(sprites.device), sprites)


@hookimpl
def disentangle_register_datasets() -> list[type[FactorDataset]]:
    return [DSprites, ColorDSprites, NoisyDSprites]

