"""Image grids as PNG files and animated GIFs: sample sheets and latent traversals."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

#: small images are enlarged to at least this many pixels per side so a grid is readable
MIN_CELL = 48


def check_file_name(name: str) -> None:
    """Refuse a picture name that is not a plain file name (it could escape the run's folder)."""
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.=+-]{0,100}", name):
        raise ValueError(f"picture name {name!r} is not a plain file name")


def cell_scale(height: int, width: int) -> int:
    """How many times :func:`grid` enlarges an image of this size (see :data:`MIN_CELL`)."""
    return max(1, -(-MIN_CELL // max(height, width)))


def grid(images: torch.Tensor, pad: int = 2, title: str = "") -> Image.Image:
    """Lay out images ``[rows, cols, C, H, W]`` in [0, 1] as one picture, with grey gutters.

    A ``title`` is written in a strip above the images.
    """
    rows, cols, channels, height, width = images.shape
    scale = cell_scale(height, width)
    pixels = images.clamp(0, 1).mul(255).round().to(torch.uint8)
    if scale > 1:
        pixels = pixels.repeat_interleave(scale, -2).repeat_interleave(scale, -1)
        height, width = height * scale, width * scale
    if channels == 1:
        pixels = pixels.expand(rows, cols, 3, height, width)
    sheet = np.full((rows * (height + pad) + pad, cols * (width + pad) + pad, 3), 128, np.uint8)
    cells = pixels.permute(0, 1, 3, 4, 2).numpy()
    for r in range(rows):
        for c in range(cols):
            top, left = pad + r * (height + pad), pad + c * (width + pad)
            sheet[top:top + height, left:left + width] = cells[r, c]
    picture = Image.fromarray(sheet)
    if not title:
        return picture
    text_width = int(ImageDraw.Draw(picture).textlength(title)) + 2 * pad
    titled = Image.new("RGB", (max(picture.width, text_width), picture.height + 14), "white")
    titled.paste(picture, (0, 14))
    ImageDraw.Draw(titled).text((pad, 1), title, fill=(0, 0, 0))
    return titled


def save_grid(images: torch.Tensor, path: Path, title: str = "") -> Path:
    """Write :func:`grid` of ``images`` to ``path`` as PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    grid(images, title=title).save(path)
    return path


def as_rows(images: torch.Tensor, cols: int) -> torch.Tensor:
    """Reshape a flat batch ``[n, C, H, W]`` into ``[n / cols, cols, C, H, W]`` for :func:`grid`."""
    return images.view(-1, cols, *images.shape[1:])


def labelled_rows(images: torch.Tensor, labels: list[str], title: str = "",
                  pad: int = 2) -> Image.Image:
    """:func:`grid` of ``images`` ``[rows, cols, C, H, W]`` with each row's label written
    to its left."""
    sheet = grid(images, pad)
    height = images.shape[-2] * cell_scale(*images.shape[-2:])
    measure = ImageDraw.Draw(sheet)
    strip = max(int(measure.textlength(label)) for label in labels) + 3 * pad
    top = 14 if title else 0
    width = strip + sheet.width
    if title:
        width = max(width, int(measure.textlength(title)) + 2 * pad)
    out = Image.new("RGB", (width, top + sheet.height), "white")
    out.paste(sheet, (strip, top))
    draw = ImageDraw.Draw(out)
    if title:
        draw.text((pad, 1), title, fill=(0, 0, 0))
    for r, label in enumerate(labels):
        middle = top + pad + r * (height + pad) + height // 2
        draw.text((pad, middle - 6), label, fill=(0, 0, 0))
    return out


def save_gif(images: torch.Tensor, path: Path, frame_ms: int = 150) -> Path:
    """An animated GIF of a traversal ``[rows, cols, C, H, W]``: frame ``k`` shows column
    ``k`` of every row side by side, and the frames run forth and back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = images.shape[1]
    order = list(range(cols)) + list(range(cols - 2, 0, -1))
    frames = [grid(images[:, k].unsqueeze(0)) for k in order]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=frame_ms, loop=0)
    return path
