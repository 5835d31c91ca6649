"""The query grid picture (PIL only)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from indexer.api.search.grid import draw_grid

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_draw_grid_writes_png_with_upscaled_tiles(tmp_path: Path) -> None:
    def square(colour: str) -> Image.Image:
        return Image.new("RGB", (64, 64), colour)

    results = [
        {"image": square("red"), "label": "rose", "score": 0.91, "match": True},
        {
            "image": square("yellow"),
            "label": "sunflower with a very long name",
            "score": 0.55,
            "match": False,
        },
        {"image": square("pink"), "label": None, "score": 0.42, "match": None},
    ]
    out = draw_grid(square("red"), "rose", results, tmp_path / "grid.png", columns=2)
    image = Image.open(out)
    assert image.format == "PNG"
    assert image.width > 3 * 128 and image.height > 2 * 128  # query + 2 columns, 2 rows of >= 128-px tiles
    # frame colours: green for the match, red for the miss, grey for unknown
    pixels = {image.getpixel((x, 14)) for x in range(image.width)}
    assert (34, 160, 60) in pixels and (210, 40, 40) in pixels
    assert draw_grid(square("red"), None, [], tmp_path / "empty.png").exists()
