"""One image's edit outside a session, shared by `promptartisan edit` and `promptartisan batch`:
ground the instructions (or take regions already made), one engine call, then the result and
its masks written whole or not at all, under names made from one stem."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from promptartisan.agent.editor import Question

if TYPE_CHECKING:
    from promptartisan.agent.editor import Editor, ProgressEvent
    from promptartisan.agent.planning.plan import Instruction
    from promptartisan.agent.sessions.store import RegionRecord

Write = Callable[[str, Callable[[Any], Any]], str]
"""`write(name, fill)`: write the file `name` atomically by calling `fill(handle)`; returns
where it went (a path or a URI)."""


def edited_name(stem: str) -> str:
    return f"{stem}.edited.png"


def mask_name(stem: str, k: int) -> str:
    return f"{stem}.mask-{k}.png"


@dataclass(frozen=True)
class NotLocated:
    """Grounding could not say where an instruction applies in this image."""

    question: Question


def edit_image(editor: Editor, image: Image.Image, stem: str, write: Write,
               instructions: list[Instruction] | None = None,
               regions: list[RegionRecord] | None = None, seed: int | None = None,
               on_event: Callable[[ProgressEvent], None] | None = None
               ) -> dict[str, Any] | NotLocated:
    """Edit `image` by `instructions` (grounded here) or by `regions`, in one engine call, and
    write the result and each region's mask (as sessions write them: 8-bit, 255 = edited).
    Returns what made the result (seed, engine parameters, models, regions), or what
    grounding would have asked."""
    if regions is None:
        located = editor.locate(image, instructions or [])
        if isinstance(located, Question):
            return NotLocated(located)
        regions = located.regions
    rendered = editor.render(image, regions, on_event=on_event, seed=seed)
    output = write(edited_name(stem), lambda handle: rendered.image.save(handle, format="PNG"))
    written = []
    for k, region in enumerate(regions):
        mask = Image.fromarray(np.asarray(region.mask, dtype=bool).astype(np.uint8) * 255)
        where = write(mask_name(stem, k), lambda handle, mask=mask: mask.save(handle,
                                                                               format="PNG"))
        written.append({"target": region.target, "prompt": region.prompt, "mask": where,
                        "group": region.group, "order": region.order, "source": region.source,
                        "score": region.score, "label": region.label, "boxes": region.boxes})
    return {"output": output, "seed": rendered.seed, "regions": written,
            "parameters": rendered.parameters}
