"""Opening image files the one way every step uses (ingest, training, embedding, query).

Torch-free: the query path imports this.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from models.errors import ImageError

MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb threshold (about 0.25 GiB of RGBA)


def open_rgb(path: str | os.PathLike[str], max_pixels: int | None = None):
    """Fully decode ``path`` into an RGB ``PIL.Image``.

    EXIF orientation is applied, animated images give their first frame, and every
    mode (CMYK, 16-bit grey, palette, alpha) is normalised to 8-bit RGB; transparent
    pixels are composited on white. Raises :class:`ImageError` with a one-line reason.
    """
    path = Path(path)
    return _decode(path, path, lambda: _size_or_none(path), max_pixels)


def decode_rgb(data: bytes, name: str, max_pixels: int | None = None):
    """:func:`open_rgb` for bytes in memory (an upload); ``name`` only labels the error messages."""
    import io

    return _decode(io.BytesIO(data), name, lambda: len(data), max_pixels)


def image_format(data: bytes) -> str | None:
    """Pillow's name for the format of encoded image bytes ("JPEG", "PNG", ...), or None."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.format
    except Exception:  # noqa: BLE001 - only asked of bytes decode_rgb accepted; the format is cosmetic
        return None


def _decode(source, path, size_of, max_pixels: int | None):
    from PIL import Image, ImageOps

    max_pixels = max_pixels or MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(source) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise ImageError(
                        f"{path}: {width}x{height} = {width * height:,} pixels exceeds "
                        f"the limit of {max_pixels:,} (possible decompression bomb)"
                    )
                img.seek(0)
                img.load()
                rgb = _to_rgb(ImageOps.exif_transpose(img))
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{path}: decompression bomb ({exc})") from None
    except FileNotFoundError:
        raise ImageError(f"{path}: file not found (or a dangling symlink)") from None
    except PermissionError:
        raise ImageError(f"{path}: permission denied") from None
    except Image.UnidentifiedImageError:
        size = size_of()
        reason = "empty file (0 bytes)" if size == 0 else "not an image Pillow can identify"
        raise ImageError(f"{path}: {reason}") from None
    except OSError as exc:
        # ELOOP for looping symlinks, truncated data, broken streams...
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ImageError(f"{path}: cannot decode ({reason})") from None
    except (ValueError, SyntaxError, EOFError) as exc:
        raise ImageError(f"{path}: cannot decode ({exc or type(exc).__name__})") from None
    return rgb


def _to_rgb(img):
    """Normalise any Pillow mode to 8-bit RGB."""
    from PIL import Image

    if img.mode == "RGB":
        return img.copy()
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        import numpy as np

        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        arr8 = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype("uint8")
        return Image.fromarray(arr8, mode="L").convert("RGB")
    if img.mode == "F":
        return img.convert("L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _size_or_none(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None
