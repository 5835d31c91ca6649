"""A seeded labelled image set that looks nothing like flowers: textured shapes on cluttered backgrounds.

A class is a shape (circle, square, triangle, star, cross, ring) filled with a pattern (solid, stripes, dots,
checker): 24 classes. Everything else varies per image and carries no class information: the colours, the
background (a random two-colour gradient with noise), the shape's position, size and rotation, the stripes'
angle, and two to four small distractor shapes. Images are 64 x 64 px like the shared Flowers copy. Writes
``DIR/img/<class>_<i>.png`` and ``DIR/labels.csv`` (filename,label,split: the first ``--train`` images of each
class are ``train``, the rest ``test``), for ``indexer ingest DIR --labels DIR/labels.csv``.

Usage: python benchmarks/make_shapes.py DIR [--per-class 60] [--train 20] [--size 64] [--seed 0]
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "star", "cross", "ring")
PATTERNS = ("solid", "stripes", "dots", "checker")


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if shape == "square":
        points = [(math.cos(angle + k * math.pi / 2 + math.pi / 4), math.sin(angle + k * math.pi / 2 + math.pi / 4))
                  for k in range(4)]
    elif shape == "triangle":
        points = [(math.cos(angle + k * 2 * math.pi / 3), math.sin(angle + k * 2 * math.pi / 3)) for k in range(3)]
    elif shape == "star":
        points = [((1 if k % 2 == 0 else 0.45) * math.cos(angle + k * math.pi / 5),
                   (1 if k % 2 == 0 else 0.45) * math.sin(angle + k * math.pi / 5)) for k in range(10)]
    elif shape == "cross":
        w = 0.33
        base = [(w, 1), (w, w), (1, w), (1, -w), (w, -w), (w, -1), (-w, -1), (-w, -w), (-1, -w), (-1, w), (-w, w),
                (-w, 1)]
        points = [(x * math.cos(angle) - y * math.sin(angle), x * math.sin(angle) + y * math.cos(angle))
                  for x, y in base]
    else:
        raise ValueError(shape)
    return [(cx + r * x, cy + r * y) for x, y in points]


def _mask(shape: str, size: int, cx: float, cy: float, r: float, angle: float) -> Image.Image:
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif shape == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        draw.ellipse([cx - r * 0.55, cy - r * 0.55, cx + r * 0.55, cy + r * 0.55], fill=0)
    else:
        draw.polygon(_polygon(shape, cx, cy, r, angle), fill=255)
    return mask


def _pattern(pattern: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """(size, size) bool: where the shape takes its second colour."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    if pattern == "solid":
        return np.zeros((size, size), bool)
    if pattern == "stripes":
        theta = rng.uniform(0, math.pi)
        period = rng.uniform(5, 8)
        return np.sin((x * math.cos(theta) + y * math.sin(theta)) * 2 * math.pi / period) > 0
    if pattern == "dots":
        period = rng.uniform(6, 9)
        ox, oy = rng.uniform(0, period, 2)
        return ((x + ox) % period - period / 2) ** 2 + ((y + oy) % period - period / 2) ** 2 < (period / 4) ** 2
    if pattern == "checker":
        period = rng.uniform(5, 8)
        return ((x // period + y // period) % 2).astype(bool)
    raise ValueError(pattern)


def draw(shape: str, pattern: str, size: int, rng: np.random.Generator) -> Image.Image:
    """One image of class (shape, pattern); everything else random."""
    colours = rng.integers(0, 256, (5, 3))
    t = np.linspace(0, 1, size, dtype=np.float32)
    direction = rng.uniform(0, 2 * math.pi)
    ramp = np.clip(0.5 + (t[None, :] - 0.5) * math.cos(direction) + (t[:, None] - 0.5) * math.sin(direction), 0, 1)
    background = colours[0] * (1 - ramp[..., None]) + colours[1] * ramp[..., None]
    background += rng.normal(0, 12, background.shape)
    canvas = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    painter = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(2, 5))):  # distractors: small plain blobs and lines
        x, y = rng.uniform(0, size, 2)
        r = rng.uniform(2, 5)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            painter.ellipse([x - r, y - r, x + r, y + r], fill=colour)
        else:
            painter.line([x, y, x + rng.uniform(-12, 12), y + rng.uniform(-12, 12)], fill=colour, width=2)
    r = rng.uniform(size * 0.22, size * 0.36)
    cx, cy = rng.uniform(r, size - r, 2)
    mask = np.asarray(_mask(shape, size, cx, cy, r, rng.uniform(0, 2 * math.pi))) > 0
    second = _pattern(pattern, size, rng)
    pixels = np.asarray(canvas).copy()
    pixels[mask & ~second] = colours[2]
    pixels[mask & second] = colours[3] if np.abs(colours[3] - colours[2]).sum() > 120 else 255 - colours[2]
    return Image.fromarray(pixels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--per-class", type=int, default=60)
    parser.add_argument("--train", type=int, default=20, help="images of each class in the train split")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    (out / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for shape in SHAPES:
        for pattern in PATTERNS:
            label = f"{pattern}-{shape}"
            for i in range(args.per_class):
                name = f"img/{label}_{i:03d}.png"
                draw(shape, pattern, args.size, rng).save(out / name)
                rows.append((name, label, "train" if i < args.train else "test"))
    with open(out / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "label", "split"])
        writer.writerows(rows)
    print(f"wrote {len(rows)} images of {len(SHAPES) * len(PATTERNS)} classes to {out}")


if __name__ == "__main__":
    main()
