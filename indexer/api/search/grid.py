"""A picture of one query and its top-k results (PIL only)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from indexer.core.files import atomic_path

THUMB = 128  # px; 64-px sources are upscaled so labels and details stay readable
THUMB_SIDE = 2 * THUMB  # pictures are decoded no larger than twice a tile
BORDER = 5
TEXT_H = 40
GAP = 12
COLUMNS = 5
FRAME = {True: (34, 160, 60), False: (210, 40, 40), None: (150, 150, 150)}
QUERY_FRAME = (40, 90, 200)


def _font(size: int = 13) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed-size bitmap font
        return ImageFont.load_default()


def _fit(text: str, font: Any, draw: ImageDraw.ImageDraw, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _tile(image: Image.Image, colour: tuple[int, int, int], lines: list[str], font: Any) -> Image.Image:
    size = THUMB + 2 * BORDER
    tile = Image.new("RGB", (size, size + TEXT_H), "white")
    tile.paste(Image.new("RGB", (size, size), colour), (0, 0))
    thumb = image.convert("RGB")
    thumb.thumbnail((THUMB, THUMB), Image.Resampling.LANCZOS)
    if max(thumb.size) < THUMB:  # thumbnail() never enlarges
        scale = THUMB / max(thumb.size)
        thumb = thumb.resize(
            (max(1, round(thumb.width * scale)), max(1, round(thumb.height * scale))),
            Image.Resampling.NEAREST,
        )
    inner = Image.new("RGB", (THUMB, THUMB), "white")
    inner.paste(thumb, ((THUMB - thumb.width) // 2, (THUMB - thumb.height) // 2))
    tile.paste(inner, (BORDER, BORDER))
    draw = ImageDraw.Draw(tile)
    for i, line in enumerate(lines):
        draw.text(
            (2, size + 2 + i * (TEXT_H // 2)), _fit(line, font, draw, size - 4), fill="black", font=font
        )
    return tile


def draw_grid(
    query_image: Image.Image,
    query_label: str | None,
    results: list[dict[str, Any]],
    path: str | os.PathLike[str],
    columns: int = COLUMNS,
) -> Path:
    """Save :func:`render_grid`'s picture as a PNG at ``path`` (its folder is created)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        render_grid(query_image, query_label, results, columns).save(tmp, format="PNG")
    return out


def render_grid(
    query_image: Image.Image,
    query_label: str | None,
    results: list[dict[str, Any]],
    columns: int = COLUMNS,
) -> Image.Image:
    """The query (blue frame) left of its results in rank order, as an RGB picture.

    results: [{"image": PIL RGB, "label": str | None, "score": float, "match": bool | None}];
    frames are green for a match, red for a non-match, grey when unknown. Each tile
    shows rank, label and score underneath. Results wrap after ``columns`` tiles.
    """
    font = _font()
    query_tile = _tile(query_image, QUERY_FRAME, ["query", query_label or "(no label)"], font)
    tiles = [
        _tile(
            r["image"],
            FRAME[r.get("match")],
            [f"#{i + 1} {r.get('label') or '?'}", f"score {r['score']:.3f}"],
            font,
        )
        for i, r in enumerate(results)
    ]
    tw, th = query_tile.size
    cols = max(1, min(columns, len(tiles))) if tiles else 1
    rows = max(1, -(-len(tiles) // cols))
    width = GAP + tw + 2 * GAP + cols * (tw + GAP)
    height = GAP + rows * (th + GAP)
    canvas = Image.new("RGB", (width, height), "white")
    canvas.paste(query_tile, (GAP, GAP))
    ImageDraw.Draw(canvas).line(
        [(GAP + tw + GAP, GAP), (GAP + tw + GAP, height - GAP)], fill=(200, 200, 200), width=2
    )
    x0 = GAP + tw + 2 * GAP
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        canvas.paste(tile, (x0 + c * (tw + GAP), GAP + r * (th + GAP)))
    return canvas


def draw_rows(rows: list[list[dict[str, Any]]], path: str | os.PathLike[str]) -> Path:
    """Save a PNG with one row of tiles per list: [{"image": PIL RGB, "lines": [str, str], "match": bool | None}].

    Frames as in :func:`draw_grid` (green / red / grey for ``match`` True / False / None).
    """
    font = _font()
    tiled = [[_tile(cell["image"], FRAME[cell.get("match")], cell["lines"], font) for cell in row] for row in rows]
    tw, th = (THUMB + 2 * BORDER, THUMB + 2 * BORDER + TEXT_H)
    cols = max([len(row) for row in tiled] + [1])
    canvas = Image.new("RGB", (GAP + cols * (tw + GAP), GAP + max(1, len(tiled)) * (th + GAP)), "white")
    for r, row in enumerate(tiled):
        for c, tile in enumerate(row):
            canvas.paste(tile, (GAP + c * (tw + GAP), GAP + r * (th + GAP)))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        canvas.save(tmp, format="PNG")
    return out


def picture_or_placeholder(path: str) -> Image.Image:
    """The image decoded no larger than a tile needs, or a grey tile when the file has gone or broken."""
    from models.errors import ImageError
    from models.images import open_rgb

    try:
        return open_rgb(path, min_side=THUMB_SIDE)
    except ImageError:
        return Image.new("RGB", (64, 64), (128, 128, 128))
