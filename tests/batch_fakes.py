"""For the batch tests: product photos with a red box, and a grounder that finds the box by
its colour. It is a real `Grounder` (the product's choosing, refining and sizing run around
it) whose model can say that an image has no red box, which the tiny random-weight models
never do. Ray's workers receive this module by value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from promptartisan.agent.editor import Editor
from promptartisan.settings import Settings
from promptartisan.tools.grounding import Grounder, Instance
from promptartisan.tools.masks import box_of

REQUEST = "turn the red box into a blue box"


class RedBoxGrounder(Grounder):
    """Every query finds the image's pure red pixels, or nothing where there are none."""

    def find(self, image: Image.Image, queries: list[str]) -> list[list[Instance]]:
        pixels = np.asarray(image.convert("RGB")).astype(int)
        red = (pixels[..., 0] > 200) & (pixels[..., 1] < 40) & (pixels[..., 2] < 40)
        found = [Instance(mask=red, box=box_of(red), score=0.9)] if red.any() else []
        return [list(found) for _ in queries]


def red_box_editor(settings: Settings) -> Editor:
    return Editor(settings, grounder=RedBoxGrounder())


def write_photos(folder: Path, photo: Image.Image, count: int) -> list[Path]:
    """`count` product photos (crops of `photo` at a few sizes), each with a red box
    somewhere."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        size = (64, 48) if i % 2 == 0 else (48, 64)
        crop = photo.crop((i * 20, i * 10, i * 20 + 256, i * 10 + 192)).resize(size)
        pixels = np.array(crop)
        x, y = 4 + (i * 7) % 30, 4 + (i * 5) % 20
        pixels[y:y + 14, x:x + 14] = (255, 0, 0)
        paths.append(folder / f"photo-{i}.png")
        Image.fromarray(pixels).save(paths[-1])
    return paths
