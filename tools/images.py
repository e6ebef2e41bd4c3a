"""Safe image loading: anything Pillow reads becomes an upright RGB image, or a clear error."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 64_000_000
"""8000×8000, the settings' default: an edit of it peaks near 1.1 GB beyond the models."""
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I")
"""Pillow's modes for 16-bit grey ("I": how it opens 16-bit PNGs and TIFFs without a ;16 mode)."""


class InvalidImageError(ValueError):
    """The input is not an image we can edit; the message says why in plain words."""


def load_image(
    source: str | Path | bytes | Image.Image, max_pixels: int = DEFAULT_MAX_PIXELS,
    name: str | None = None,
) -> Image.Image:
    """Open `source` (a path, bytes or PIL image) as an RGB image with EXIF orientation applied.

    Refuses empty, truncated and non-image data, decompression bombs and images over
    `max_pixels`, each with an `InvalidImageError` that starts with `name` (default: the
    file's name, or "image" for bytes: pass the name bytes were read from).
    """
    image = open_image(source, max_pixels, name)
    try:
        return _to_rgb(image)
    except (OSError, ValueError, SyntaxError) as exc:
        name = name or (Path(source).name if isinstance(source, (str, Path)) else "image")
        raise InvalidImageError(f"{name}: the image data is damaged ({exc})") from exc


def open_image(
    source: str | Path | bytes | Image.Image, max_pixels: int = DEFAULT_MAX_PIXELS,
    name: str | None = None,
) -> Image.Image:
    """`source` decoded in its own mode (alpha, bit depth and palette kept: a mask reader needs
    them), EXIF orientation applied, with `load_image`'s checks."""
    given, name = name, name or "image"
    if isinstance(source, Image.Image):
        image = source
    else:
        if isinstance(source, (str, Path)):
            path = Path(source)
            name = given or path.name
            if not path.is_file():
                raise InvalidImageError(f"{name}: no such file")
            data = path.read_bytes()
        elif isinstance(source, (bytes, bytearray)):
            data = bytes(source)
        else:
            raise InvalidImageError(f"cannot read an image from {type(source).__name__}")
        if not data:
            raise InvalidImageError(f"{name}: the file is empty")
        image = _open(data, name, max_pixels)
    width, height = image.size
    if width < 1 or height < 1:
        raise InvalidImageError(f"{name}: the image has no pixels")
    if width * height > max_pixels:
        raise InvalidImageError(
            f"{name}: {width}×{height} is {width * height:,} pixels, over the limit of "
            f"{max_pixels:,}; resize it first"
        )
    try:
        if image is source:  # the caller's picture: turn a copy
            return ImageOps.exif_transpose(image)
        ImageOps.exif_transpose(image, in_place=True)  # our own: no second full-size copy
        return image
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidImageError(f"{name}: the image data is damaged ({exc})") from exc


def _open(data: bytes, name: str, max_pixels: int) -> Image.Image:
    """Parse the header, check the size, and only then decode the pixels."""
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > max_pixels:
            raise InvalidImageError(
                f"{name}: {width}×{height} is {width * height:,} pixels, over the limit of "
                f"{max_pixels:,}; resize it first"
            )
        image.load()
    except InvalidImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise InvalidImageError(f"{name}: refused as a decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise InvalidImageError(f"{name}: not an image file in a format I can read") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InvalidImageError(f"{name}: the file is truncated or damaged ({exc})") from exc
    return image


def _to_rgb(image: Image.Image) -> Image.Image:
    """Flatten alpha onto white, expand palettes, scale 16-bit (by the mode: a dark 16-bit
    picture stays dark) and convert CMYK/gray to RGB."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in SIXTEEN_BIT_MODES:
        image = Image.fromarray(sixteen_to_eight(np.asarray(image)))
    if image.mode == "F":
        array = np.asarray(image, dtype=np.float32)
        image = Image.fromarray(np.clip(array * (255.0 if array.max() <= 1 else 1), 0, 255)
                                .astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def working_size(size: tuple[int, int], long_side: int = 512) -> tuple[int, int]:
    """The engine's size for `size`: long side `long_side`, both sides multiples of 8."""
    width, height = size
    scale = long_side / max(width, height)
    return (max(8, round(width * scale / 8) * 8), max(8, round(height * scale / 8) * 8))


def to_working_size(image: Image.Image, long_side: int = 512) -> Image.Image:
    """Resize for the engine (Lanczos); `from_working_size` undoes it."""
    target = working_size(image.size, long_side)
    return image if image.size == target else image.resize(target, Image.Resampling.LANCZOS)


def from_working_size(image: Image.Image, original_size: tuple[int, int]) -> Image.Image:
    """Resize an engine result back to the upload's size: Lanczos, columns then rows. The order
    is fixed (Pillow picks its own per call) so that the paste-back, which resizes a strip of
    rows at a time, gets the very pixels of this whole resize."""
    width, height = original_size
    if image.size == (width, height):
        return image
    columns = image.resize((width, image.height), Image.Resampling.LANCZOS)
    return columns.resize((width, height), Image.Resampling.LANCZOS)


def sixteen_to_eight(array: np.ndarray) -> np.ndarray:
    """16-bit values (0–65535, whatever the picture's own range) to 8 bits: round(v / 257)."""
    wide = np.array(array, dtype=np.int32)  # the one working copy, changed in place
    np.clip(wide, 0, 65535, out=wide)
    wide += 128
    wide //= 257
    return wide.astype(np.uint8)
