"""How closely the dSprites renderer reproduces real frames of the official dataset.

For every real 64x64 frame (``gif_frames.npz``: the 320 frames of the official animation, and
the 43 sprites of the sample pictures, cut out of their upscaled plots), the factor
combination whose rendering matches best is searched without being told anything: shape,
scale and orientation candidates come from the sprite's area, the position from its centroid,
then a local search tries every single-factor neighbour until nothing improves. The
benchmark reports the distribution of the best intersection-over-union, the number of frames
matched pixel for pixel, and, for the animation, whether the recovered factors follow the
animation's sweeps (one factor changing at a time).

Needs the reference frames in ``../shared/reference/dsprites`` beside the repository; without
them it says so and exits. Run: ``python benchmarks/dsprites_fidelity.py``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from disentangle_plugins.datasets.dsprites import DSprites, render

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "dsprites"
SIZES = DSprites.factor_sizes


def iou(rendered: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """IoU of each rendered image ``[n, 64, 64]`` with one frame ``[64, 64]``."""
    inter = (rendered & frame).sum((1, 2))
    union = (rendered | frame).sum((1, 2))
    return inter / np.maximum(union, 1)


class Matcher:
    """Finds the factor combination whose rendering best matches a frame."""

    def __init__(self) -> None:
        configs = np.stack(np.unravel_index(np.arange(np.prod(SIZES[:3])), SIZES[:3]), axis=1)
        self.configs = configs
        at_origin = np.concatenate([configs, np.zeros((len(configs), 2), np.int64)], axis=1)
        sprites = render(at_origin).bool().numpy()
        self.areas = sprites.sum((1, 2))
        grid = np.arange(64) + 0.5
        self.offsets = np.stack([(sprites.sum(1) * grid).sum(1), (sprites.sum(2) * grid).sum(1)],
                                axis=1) / self.areas[:, None] - 16.0

    def candidates(self, frame: np.ndarray) -> np.ndarray:
        """Factor rows to try first: similar area, positions around the centroid estimate."""
        area = frame.sum()
        grid = np.arange(64) + 0.5
        centroid = np.array([(frame.sum(0) * grid).sum(), (frame.sum(1) * grid).sum()]) / area
        close = np.abs(self.areas - area) <= 0.12 * area
        keep = np.flatnonzero(close) if close.any() else np.argsort(np.abs(self.areas - area))[:60]
        rows = []
        for c in keep:
            pos = np.rint((centroid - 16.0 - self.offsets[c]) * 31 / 32).astype(int)
            for dx in (-1, 0, 1):
                for dy in (-1, 0, 1):
                    px, py = np.clip(pos + (dx, dy), 0, 31)
                    rows.append((*self.configs[c], px, py))
        return np.unique(np.array(rows), axis=0)

    def best(self, frame: np.ndarray) -> tuple[np.ndarray, float]:
        """The best factor row and its IoU (candidates, then single-factor local search)."""
        rows = self.candidates(frame)
        scores = iou(render(rows).bool().numpy(), frame)
        best, score = rows[scores.argmax()], float(scores.max())
        while True:
            moves = []
            for k, size in enumerate(SIZES):
                for value in range(size):
                    if value != best[k]:
                        row = best.copy()
                        row[k] = value
                        moves.append(row)
            moves = np.array(moves)
            scores = iou(render(moves).bool().numpy(), frame)
            if scores.max() <= score:
                return best, score
            best, score = moves[scores.argmax()], float(scores.max())


def cut_tiles(path: Path) -> np.ndarray:
    """The 64x64 sprites of a grid picture (black tiles on white, upscaled with nearest
    neighbours): each tile's extent is found from the white gutters and sampled at the
    centres of its 64 x 64 source pixels."""
    from PIL import Image

    picture = np.asarray(Image.open(path).convert("L")) > 127
    def runs(gutter: np.ndarray) -> list[tuple[int, int]]:
        edges = np.flatnonzero(np.diff(np.concatenate(([1], gutter.astype(int), [1]))))
        return list(zip(edges[::2], edges[1::2]))
    tiles = []
    for top, bottom in runs(picture.all(1)):
        for left, right in runs(picture.all(0)):
            ys = (top + (np.arange(64) + 0.5) * (bottom - top) / 64).astype(int)
            xs = (left + (np.arange(64) + 0.5) * (right - left) / 64).astype(int)
            tiles.append(picture[np.ix_(ys, xs)])
    return np.array(tiles)


def report(name: str, scores: np.ndarray) -> None:
    exact = int((scores == 1.0).sum())
    print(f"{name}: {len(scores)} frames, mean IoU {scores.mean():.4f}, worst {scores.min():.4f}, "
          f"pixel-exact {exact}/{len(scores)}, IoU < 0.80: {int((scores < 0.8).sum())}")


def sweeps_consistent(found: np.ndarray) -> int:
    """How many consecutive animation frames differ in at most one factor (the animation
    sweeps one factor at a time; orientation 0 and 2 pi draw the same image, so a recovered
    orientation 39 counts as 0)."""
    rows = found.copy()
    rows[rows[:, 2] == SIZES[2] - 1, 2] = 0
    return int(((rows[1:] != rows[:-1]).sum(1) <= 1).sum())


def main() -> int:
    if not (REFERENCE / "gif_frames.npz").is_file():
        print(f"skipped: the reference frames are not there ({REFERENCE.name} beside the "
              "repository's parent is absent)")
        return 0
    torch.set_num_threads(1)
    start = time.perf_counter()
    matcher = Matcher()
    frames = np.load(REFERENCE / "gif_frames.npz")["frames"].astype(bool)
    found, scores = zip(*(matcher.best(frame) for frame in frames))
    found, scores = np.array(found), np.array(scores)
    report("animation frames (gif_frames.npz)", scores)
    print(f"  consecutive frames differing in at most one factor: "
          f"{sweeps_consistent(found)}/{len(found) - 1}")
    worst = np.argsort(scores)[:5]
    print("  worst frames (index: IoU, differing pixels, factors shape/scale/orientation/x/y):")
    for i in worst:
        wrong = int((render(found[i:i + 1]).bool().numpy()[0] != frames[i]).sum())
        print(f"    {i}: {scores[i]:.4f}, {wrong} px, {found[i].tolist()}")
    tiles = np.concatenate([cut_tiles(REFERENCE / f"{name}.png") for name in
                            ("random_samples_5x5", "samples_orientation5", "samples_posX0")])
    tile_found, tile_scores = zip(*(matcher.best(tile) for tile in tiles))
    tile_found, tile_scores = np.array(tile_found), np.array(tile_scores)
    report("sprites of the sample pictures (cut from upscaled plots)", tile_scores)
    print(f"  orientation recovered as 5 in samples_orientation5: "
          f"{int((tile_found[25:34, 2] == 5).sum())}/9; posX recovered as 0 in samples_posX0: "
          f"{int((tile_found[34:, 3] == 0).sum())}/9")
    print(f"time {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
