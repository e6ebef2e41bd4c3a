"""Small stand-ins for the planner, grounder and engine that the agent tests inject into an
Editor. No tests here; the crash test's subprocess imports this module too."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from promptartisan.agent.planning.plan import Instruction, Plan
from promptartisan.tools.grounding import Grounding
from promptartisan.tools.masks import box_of


def edit(*pairs: tuple[str, str]) -> Plan:
    return Plan(action="edit", instructions=[Instruction(target=t, instruction=i)
                                             for t, i in pairs])


class ScriptedPlanner:
    """Plans by lookup: text → Plan; anything else is a chat reply. Records its calls."""

    def __init__(self, plans: dict[str, Plan]) -> None:
        self.plans = plans
        self.calls: list[tuple[str, list[str]]] = []

    def plan(self, text: str, context: list[str]) -> Plan:
        self.calls.append((text, list(context)))
        return self.plans.get(text, Plan(action="chat", reply=f"(no plan for {text!r})"))


def boxed(size: tuple[int, int], box: tuple[float, float, float, float]) -> np.ndarray:
    """A bool mask of `size` (width, height), true inside `box` given as fractions."""
    width, height = size
    mask = np.zeros((height, width), dtype=bool)
    x0, y0, x1, y1 = box
    mask[round(y0 * height):round(y1 * height), round(x0 * width):round(x1 * width)] = True
    return mask


class BoxGrounder:
    """Grounds each known phrase to a fixed box (fractions of the image); `twins` phrases
    match two instances and come back ambiguous. Unknown phrases find nothing."""

    def __init__(self, boxes: dict[str, tuple[float, float, float, float]],
                 twins: dict[str, list[tuple[float, float, float, float]]] | None = None,
                 fail: bool = False) -> None:
        self.boxes, self.twins, self.fail = boxes, twins or {}, fail
        self.calls: list[list[str]] = []

    def ground(self, image: Image.Image, phrases: list[str]) -> list[Grounding | None]:
        self.calls.append(list(phrases))
        if self.fail:
            raise RuntimeError("grounding model exploded")
        results: list[Grounding | None] = []
        for phrase in phrases:
            if phrase in self.twins:
                pixels = [_pixels(box, image.size) for box in self.twins[phrase]]
                mask = boxed(image.size, self.twins[phrase][0])
                results.append(Grounding(mask=mask, score=0.9, boxes=np.array(pixels[:1]),
                                         label=phrase, ambiguous=True,
                                         candidates=[np.array(p) for p in pixels]))
            elif phrase in self.boxes:
                mask = boxed(image.size, self.boxes[phrase])
                results.append(Grounding(mask=mask, score=0.8, boxes=box_of(mask)[None],
                                         label=phrase))
            else:
                results.append(None)
        return results

    def segment(self, image: Image.Image, points: Any = None, labels: Any = None,
                boxes: Any = None) -> Grounding:
        mask = np.zeros((image.size[1], image.size[0]), dtype=bool)
        for x0, y0, x1, y1 in boxes:
            mask[round(y0):round(y1), round(x0):round(x1)] = True
        return Grounding(mask=mask, score=1.0, boxes=np.asarray(boxes), label="selection")


def _pixels(box: tuple[float, float, float, float], size: tuple[int, int]) -> list[float]:
    width, height = size
    return [box[0] * width, box[1] * height, box[2] * width, box[3] * height]


@dataclass
class FakeOutput:
    images: list[Image.Image]
    interrupted: bool = False


@dataclass
class PaintingEngine:
    """Paints each region's mask a colour derived from its prompt and shifts every other pixel
    by one level (as a VAE round trip would), running the step callback like diffusers.
    Records entering and leaving each call, per thread; `during_step` runs inside step 1."""

    step_seconds: float = 0.0
    during_step: Callable[[], None] | None = None
    log: list[tuple[str, str]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    _interrupted: bool = False

    def interrupt_run(self) -> None:
        self._interrupted = True

    def __call__(self, image: Image.Image, regions: list[Any], num_inference_steps: int,
                 callback_on_step_end: Callable[..., dict[str, Any]] | None = None,
                 **kwargs: Any) -> FakeOutput:
        name = threading.current_thread().name
        self.log.append(("enter", name))
        self.calls.append({"size": image.size, "regions": regions, "steps": num_inference_steps,
                           **kwargs})
        self._interrupted = False
        try:
            for step in range(num_inference_steps):
                time.sleep(self.step_seconds)
                if step == 0 and self.during_step is not None:
                    self.during_step()
                if callback_on_step_end is not None:
                    callback_on_step_end(self, step, 999 - step, {})
                if self._interrupted:
                    return FakeOutput(images=[], interrupted=True)
            pixels = np.asarray(image, dtype=np.int16) + 1
            for region in regions:
                mask = np.asarray(Image.fromarray(np.asarray(region.mask, dtype=np.uint8) * 255)
                                  .resize(image.size)) > 127
                pixels[mask] = prompt_colour(region.prompt)
            return FakeOutput(images=[Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))])
        finally:
            self.log.append(("exit", name))


def prompt_colour(prompt: str) -> tuple[int, int, int]:
    code = sum(map(ord, prompt))
    return (code * 37 % 256, code * 91 % 256, code * 53 % 256)
