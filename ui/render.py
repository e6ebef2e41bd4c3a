"""Images encoded for the browser (as files, or as data URLs small enough to ride in a custom
element's props), and text from elsewhere made safe to show as Markdown."""

from __future__ import annotations

import base64
import io
import re

from PIL import Image

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


def png_bytes(image: Image.Image) -> bytes:
    """The image as PNG: lossless, so what the browser shows is what the session holds."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(image: Image.Image, long_side: int, lossless: bool = True) -> str:
    """The image as a `data:` URL, shrunk (never enlarged) to `long_side`: PNG, or JPEG for
    thumbnails, where a tenth of the bytes matters more than exact pixels."""
    small = image.convert("RGB")
    small.thumbnail((long_side, long_side), Image.Resampling.LANCZOS)
    if lossless:
        kind, data = "png", png_bytes(small)
    else:
        buffer = io.BytesIO()
        small.save(buffer, format="JPEG", quality=85)
        kind, data = "jpeg", buffer.getvalue()
    return f"data:image/{kind};base64,{base64.b64encode(data).decode('ascii')}"
