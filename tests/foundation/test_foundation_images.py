"""Safe image loading: every bad input gets InvalidImageError, every odd-but-valid one loads."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from PIL import Image

from promptartisan.tools.images import (
    InvalidImageError,
    from_working_size,
    load_image,
    to_working_size,
    working_size,
)


def encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def rgb() -> Image.Image:
    gradient = np.zeros((30, 40, 3), dtype=np.uint8)
    gradient[..., 0] = np.arange(40, dtype=np.uint8)[None, :] * 6
    gradient[..., 1] = np.arange(30, dtype=np.uint8)[:, None] * 8
    gradient[..., 2] = 90
    return Image.fromarray(gradient)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF"])
def test_common_formats_load_as_rgb(rgb: Image.Image, fmt: str) -> None:
    loaded = load_image(encode(rgb, fmt))
    assert loaded.mode == "RGB"
    assert loaded.size == (40, 30)


def test_exif_orientation_is_applied(rgb: Image.Image) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    loaded = load_image(encode(rgb, "JPEG", exif=exif, quality=95))
    assert loaded.size == (30, 40)


def test_alpha_is_flattened_onto_white() -> None:
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (0, 0, 255, 255))
    loaded = np.asarray(load_image(encode(rgba, "PNG")))
    assert tuple(loaded[5, 5]) == (255, 255, 255)
    assert tuple(loaded[0, 0]) == (0, 0, 255)


def test_palette_with_transparency(rgb: Image.Image) -> None:
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 0
    loaded = load_image(encode(palette, "PNG", transparency=0))
    assert loaded.mode == "RGB" and loaded.size == (40, 30)


def test_sixteen_bit_grayscale_scales_to_eight_bits() -> None:
    array = np.full((10, 12), 65535, dtype=np.uint16)
    array[0, 0] = 0
    loaded = np.asarray(load_image(encode(Image.fromarray(array), "PNG")))
    assert loaded.shape == (10, 12, 3)
    assert tuple(loaded[5, 5]) == (255, 255, 255)
    assert tuple(loaded[0, 0]) == (0, 0, 0)


def test_a_dark_sixteen_bit_picture_stays_dark() -> None:
    """All values ≤ 255 in a 16-bit file: the bit depth comes from the mode, so 255 is
    255/65535 of full scale (1 in 8 bits), not white."""
    array = np.array([[0, 128, 129, 255], [200, 385, 386, 32896]], dtype=np.uint16)
    picture = Image.open(io.BytesIO(encode(Image.fromarray(array), "PNG")))
    assert picture.mode.startswith("I")
    loaded = np.asarray(load_image(encode(Image.fromarray(array), "PNG")))[..., 0]
    assert loaded.tolist() == np.rint(array / 257).astype(np.uint8).tolist()
    assert loaded.tolist() == [[0, 0, 1, 1], [1, 1, 2, 128]]


def test_a_picture_given_in_rgb_is_copied_not_shared(rgb: Image.Image) -> None:
    loaded = load_image(rgb)
    assert loaded is not rgb and np.array_equal(np.asarray(loaded), np.asarray(rgb))


def test_cmyk_and_grayscale_become_rgb(rgb: Image.Image) -> None:
    cmyk = load_image(encode(rgb.convert("CMYK"), "JPEG"))
    gray = load_image(encode(rgb.convert("L"), "PNG"))
    assert cmyk.mode == gray.mode == "RGB"
    assert np.asarray(gray)[..., 0].tolist() == np.asarray(gray)[..., 2].tolist()


def test_non_image_is_refused() -> None:
    with pytest.raises(InvalidImageError, match="not an image"):
        load_image(b"%PDF-1.4 hello")


def test_empty_file_is_refused(tmp_path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(InvalidImageError, match="empty"):
        load_image(empty)


def test_missing_file_is_refused(tmp_path) -> None:
    with pytest.raises(InvalidImageError, match="no such file"):
        load_image(tmp_path / "nope.png")


def test_truncated_file_is_refused(rgb: Image.Image) -> None:
    data = encode(rgb, "PNG")
    with pytest.raises(InvalidImageError, match="truncated|damaged"):
        load_image(data[: len(data) // 2])


def test_images_over_the_pixel_limit_are_refused(rgb: Image.Image) -> None:
    with pytest.raises(InvalidImageError, match="over the limit"):
        load_image(encode(rgb, "PNG"), max_pixels=40 * 30 - 1)


def test_decompression_bomb_is_refused_before_decoding() -> None:
    # A valid PNG header claiming 100k × 100k pixels: refused from the header alone.
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (len(body).to_bytes(4, "big") + kind + body
                + zlib.crc32(kind + body).to_bytes(4, "big"))

    header = (100_000).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")
    with pytest.raises(InvalidImageError, match="limit|bomb"):
        load_image(bomb)


def test_unsupported_source_type() -> None:
    with pytest.raises(InvalidImageError):
        load_image(12345)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [(640, 480), (481, 1000), (33, 17), (512, 512)])
def test_working_size_is_a_multiple_of_eight_with_the_long_side_set(size) -> None:
    width, height = working_size(size, 512)
    assert width % 8 == 0 and height % 8 == 0
    assert abs(max(width, height) - 512) <= 4


def test_round_trip_through_the_working_size(rgb: Image.Image) -> None:
    small = to_working_size(rgb, 64)
    assert small.size == (64, 48)
    assert from_working_size(small, rgb.size).size == rgb.size
