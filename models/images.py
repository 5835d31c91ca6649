"""Opening image files the one way every step uses (ingest, training, embedding, query).

Torch-free: the query path imports this.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

from models.errors import ImageError

MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb threshold (about 0.25 GiB of RGBA)
DECODED_PIXEL_BUDGET = 25_000_000  # pixels decoded for one image (after JPEG draft scaling): ~75 MB as RGB
PLUGIN_HINTS = {  # what to install when a file of this kind cannot be identified
    ".heic": "HEIC/HEIF images need the pillow-heif plugin: pip install pillow-heif",
    ".heif": "HEIC/HEIF images need the pillow-heif plugin: pip install pillow-heif",
    ".avif": "AVIF images need Pillow >= 11.3 built with libavif, or the plugin: pip install pillow-avif-plugin",
}
_REDUCIBLE_MODES = frozenset({"RGB", "RGBA", "L", "LA", "I", "F", "CMYK", "YCbCr"})  # Image.reduce refuses 1, P, I;16
_ORIENTATION_TAG = 0x0112
_plugins_registered = False


def register_plugins() -> None:
    """Register the optional format plugins that are installed (pillow-heif for HEIC/HEIF); once per process."""
    global _plugins_registered
    if _plugins_registered:
        return
    _plugins_registered = True
    try:
        import pillow_heif
    except ImportError:
        return
    pillow_heif.register_heif_opener()


def missing_plugin_hint(suffix: str) -> str | None:
    """What to install to read files ending in ``suffix``, when the plugin for them is missing; else None."""
    import importlib.util

    from PIL import features

    suffix = suffix.lower()
    if suffix in (".heic", ".heif") and importlib.util.find_spec("pillow_heif") is None:
        return PLUGIN_HINTS[suffix]
    if suffix == ".avif" and not features.check("avif"):
        return PLUGIN_HINTS[suffix]
    return None


def open_rgb(
    path: str | os.PathLike[str],
    max_pixels: int | None = None,
    *,
    min_side: int | None = None,
    max_decoded_pixels: int = DECODED_PIXEL_BUDGET,
    thumbnails: bool = False,
):
    """Decode ``path`` completely into an 8-bit RGB ``PIL.Image``, no larger than needed.

    With ``min_side`` the image is decoded at the smallest size whose shorter side is still at least
    ``min_side``: JPEGs through the decoder's DCT scaling (draft mode, 1/2 to 1/8 of the size, the whole
    stream still read, so truncation is still caught), other formats by an integer ``reduce`` right after
    decoding. With ``thumbnails`` a HEIC/HEIF file's embedded thumbnail is decoded instead of the image when
    one is large enough (the main image is then not read: never for proving a file whole). EXIF orientation
    is applied, animated images give their first frame, and every mode (CMYK, 16-bit grey, palette, alpha)
    is normalised to 8-bit RGB; transparent pixels are composited on white.
    ``info["original_size"]`` holds the file's own (width, height), orientation applied, and
    ``info["format"]`` Pillow's name of its format. More than ``max_pixels`` in the file (a decompression
    bomb) or more than ``max_decoded_pixels`` to decode is an error. Raises :class:`ImageError` with a
    one-line reason.
    """
    path = Path(path)
    return _decode(path, path, lambda: _size_or_none(path), path.suffix, max_pixels, min_side,
                   max_decoded_pixels, thumbnails)


def decode_rgb(
    data: bytes,
    name: str,
    max_pixels: int | None = None,
    *,
    min_side: int | None = None,
    max_decoded_pixels: int = DECODED_PIXEL_BUDGET,
    thumbnails: bool = False,
):
    """:func:`open_rgb` for bytes in memory (an upload); ``name`` labels the error messages."""
    import io

    return _decode(io.BytesIO(data), name, lambda: len(data), Path(name).suffix, max_pixels, min_side,
                   max_decoded_pixels, thumbnails)


def _decode(source, path, size_of, suffix: str, max_pixels: int | None, min_side: int | None,
            max_decoded_pixels: int, thumbnails: bool):
    from PIL import Image, ImageOps

    register_plugins()
    max_pixels = max_pixels or MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(source) as img:
                width, height, file_format = *img.size, img.format
                if width * height > max_pixels:
                    raise ImageError(
                        f"{path}: {width}x{height} = {width * height:,} pixels exceeds "
                        f"the limit of {max_pixels:,} (possible decompression bomb)"
                    )
                img.seek(0)
                if min_side and min(width, height) > min_side and (img.format == "JPEG" or thumbnails):
                    ratio = min_side / min(width, height)
                    img.draft("RGB", (max(1, math.ceil(width * ratio)), max(1, math.ceil(height * ratio))))
                if img.size[0] * img.size[1] > max_decoded_pixels:
                    raise ImageError(
                        f"{path}: decoding {img.size[0]}x{img.size[1]} pixels exceeds the per-image budget of "
                        f"{max_decoded_pixels:,} (save it smaller, or as JPEG, which decodes at a reduced size)"
                    )
                img.load()
                rotated = img.getexif().get(_ORIENTATION_TAG, 1) in (5, 6, 7, 8)
                # Reduce before turning upright: exif_transpose copies the whole image even when it has nothing
                # to turn, and a reduction by an integer factor commutes with the turn (the shorter side is the
                # same either way), so the copy is made of the small image.
                if min_side and min(img.size) >= 2 * min_side:
                    if img.mode not in _REDUCIBLE_MODES:
                        img = _to_rgb(img)
                    img = img.reduce(min(img.size) // min_side)
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
        hint = missing_plugin_hint(suffix)
        reason = "empty file (0 bytes)" if size == 0 else (hint or "not an image Pillow can identify")
        raise ImageError(f"{path}: {reason}") from None
    except OSError as exc:
        # ELOOP for looping symlinks, truncated data, broken streams...
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ImageError(f"{path}: cannot decode ({reason})") from None
    except (ValueError, SyntaxError, EOFError) as exc:
        raise ImageError(f"{path}: cannot decode ({exc or type(exc).__name__})") from None
    rgb.info["original_size"] = (height, width) if rotated else (width, height)
    rgb.info["format"] = file_format
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
