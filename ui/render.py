"""Pictures the chat shows that no other package makes: before|after side by side, and
images encoded for the browser; and text from elsewhere made safe to show as Markdown."""

from __future__ import annotations

import io
import re

from PIL import Image, ImageDraw, ImageFont

LABEL_HEIGHT_FRACTION = 0.07
GAP = 8
# Marks that start markup anywhere in a line (emphasis, code, links, HTML, entities,
# strikethrough, tables, LaTeX), and those that do only at a line's start (headings, quotes,
# lists, setext underlines); CommonMark lets a backslash escape any of them.
INLINE_MARKUP = re.compile(r"([\\`*_\[\]<>~&$|])")
LINE_START_MARKUP = re.compile(r"^(\d*)([#+=-]|(?<=\d)[.)])")  # "1." and "1)" start lists


def escape_markdown(text: str) -> str:
    """`text` (an error from a library, a file name, a spec like `llm:ollama:MODEL[@URL]`)
    shown literally by a Markdown renderer, on one line."""
    line = INLINE_MARKUP.sub(r"\\\1", " ".join(text.split()))
    return LINE_START_MARKUP.sub(r"\1\\\2", line)


def side_by_side(before: Image.Image, after: Image.Image, labels: tuple[str, str] = (
        "before", "after")) -> Image.Image:
    """Both images at the same height next to each other, each with its label on a band on top,
    so a difference is visible at a glance."""
    height = max(before.height, after.height)
    left = _to_height(before.convert("RGB"), height)
    right = _to_height(after.convert("RGB"), height)
    band = max(18, round(height * LABEL_HEIGHT_FRACTION))
    canvas = Image.new("RGB", (left.width + GAP + right.width, height + band), "white")
    canvas.paste(left, (0, band))
    canvas.paste(right, (left.width + GAP, band))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=round(band * 0.7))
    for label, x0, width in ((labels[0], 0, left.width),
                             (labels[1], left.width + GAP, right.width)):
        text_width = draw.textlength(label, font=font)
        draw.text((x0 + (width - text_width) / 2, band * 0.12), label, fill="black", font=font)
    return canvas


def png_bytes(image: Image.Image) -> bytes:
    """The image as PNG: lossless, so what the browser shows is what the session holds."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _to_height(image: Image.Image, height: int) -> Image.Image:
    if image.height == height:
        return image
    width = max(1, round(image.width * height / image.height))
    return image.resize((width, height), Image.Resampling.LANCZOS)
