"""SequentialBaseline: what a user does without PromptArtisan, one stock edit per instruction,
each on the previous output (stock SD1.5 or SDXL InstructPix2Pix, or FLUX.1 Kontext: the
pipeline's family). The reference for comparisons and the benchmark."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import PIL.Image
import torch

from promptartisan.engine.pipeline import PromptArtisanPipeline
from promptartisan.engine.pipeline_kontext import PromptArtisanKontextPipeline
from promptartisan.engine.pipeline_xl import PromptArtisanXLPipeline
from promptartisan.engine.region_pass import PromptArtisanPipelineOutput
from promptartisan.engine.regions import Region, prepare_regions


class _Stopped(Exception):
    """Raised from a stock pass's callback to end it: the stock loop has no interrupt check."""


class SequentialBaseline:
    """One pass per region, in the regions' order (lowest `order` first, so the top layer is
    applied last). `masked=False`: the family's stock pipeline on the whole image with each
    prompt, as a user would run it. `masked=True`: each pass is a PromptArtisan pass with that
    one region (routing, blending and paste-back alike), isolating what the single pass
    changes.

    It shares `pipe`'s components. The callback sees `pipe` and a step counted across passes, and
    stops the run with `pipe.interrupt_run()` as for the single pass.
    """

    def __init__(self, pipe: PromptArtisanPipeline | PromptArtisanXLPipeline
                 | PromptArtisanKontextPipeline, masked: bool = False) -> None:
        self.pipe = pipe
        self.masked = masked
        self.stock = pipe.stock_pipeline()
        self.stock.set_progress_bar_config(**getattr(pipe, "_progress_bar_config", {}))

    def __call__(
        self,
        image: PIL.Image.Image | np.ndarray,
        regions: Sequence[Region],
        num_inference_steps: int = 20,
        guidance_scale: float | None = None,
        image_guidance_scale: float = 1.5,
        generator: torch.Generator | None = None,
        callback_on_step_end: Callable[..., dict[str, Any]] | None = None,
        max_regions: int = 8,
        **masked_kwargs: Any,
    ) -> PromptArtisanPipelineOutput:
        """Edit `image` region by region; `masked_kwargs` go to each masked pass.
        `guidance_scale` None: the family's default; `image_guidance_scale` reaches the
        families that have it (InstructPix2Pix's, not Kontext's)."""
        size = image.size if isinstance(image, PIL.Image.Image) else tuple(image.shape[1::-1])
        regions = prepare_regions(regions, size, max_regions)[0]
        self.pipe._interrupt = False
        current = image
        for index, region in enumerate(sorted(regions, key=lambda r: r.order)):
            offset = index * num_inference_steps
            common = {"num_inference_steps": num_inference_steps, "generator": generator,
                      "guidance_scale": (self.pipe.default_guidance_scale
                                         if guidance_scale is None else guidance_scale)}
            if "image_guidance_scale" in inspect.signature(self.pipe.__call__).parameters:
                common["image_guidance_scale"] = image_guidance_scale
            if self.masked:
                output = self.pipe(current, [region], **common, **masked_kwargs,
                                   callback_on_step_end=self._shifted(callback_on_step_end,
                                                                      offset))
                if output.interrupted:
                    return output
                current = output.images[0]
                continue
            try:
                current = self.stock_edit(region.prompt, current,
                                          self._stopping(callback_on_step_end, offset), **common)
            except _Stopped:
                return PromptArtisanPipelineOutput(images=[], interrupted=True)
        if current.size != size:  # stock works at a multiple of 8 pixels: back to the source's
            current = current.resize(size, PIL.Image.Resampling.BICUBIC)
        return PromptArtisanPipelineOutput(images=[current], interrupted=False)

    def stock_edit(self, prompt: str, image: PIL.Image.Image | np.ndarray,
                   callback: Callable[[int, torch.Tensor, dict[str, Any]], Any] | None = None,
                   **kwargs: Any) -> PIL.Image.Image:
        """One stock pass on the whole image, at its size rounded down to a multiple of 8 (16
        for Kontext). `callback(step, timestep, {"latents": …})` runs through the hook stock
        has: SD1.5's and Kontext's `callback_on_step_end` after each model call; SDXL's older
        `callback`, after each denoising step (its stock has no other), which also needs the
        size (it would work at its UNet's default size, whatever the image's). Kontext is told
        the size too, and not to resize to its preferred resolutions (so that every family
        edits at the size it is given, as the single pass does); its T5 prompt is stock's 512
        padded tokens, as a user runs it."""
        if isinstance(self.pipe, (PromptArtisanXLPipeline, PromptArtisanKontextPipeline)):
            height, width = self.pipe.image_processor.get_default_height_width(image)
            kwargs = {"height": height, "width": width, **kwargs}
        if isinstance(self.pipe, PromptArtisanKontextPipeline):
            kwargs = {"max_area": height * width, "_auto_resize": False, **kwargs}
        if isinstance(self.pipe, PromptArtisanXLPipeline):
            if callback is not None:
                kwargs["callback"] = lambda step, timestep, latents: callback(
                    step, timestep, {"latents": latents})
        elif callback is not None:
            kwargs["callback_on_step_end"] = lambda _stock, step, timestep, tensors: callback(
                step, timestep, tensors)
        return self.stock(prompt=prompt, image=image, **kwargs).images[0]

    def _shifted(self, callback: Callable[..., dict[str, Any]] | None, offset: int
                 ) -> Callable[..., dict[str, Any]] | None:
        if callback is None:
            return None
        return lambda pipe, step, timestep, tensors: callback(pipe, offset + step, timestep,
                                                              tensors)

    def _stopping(self, callback: Callable[..., dict[str, Any]] | None, offset: int
                  ) -> Callable[[int, torch.Tensor, dict[str, Any]], dict[str, Any]] | None:
        if callback is None:
            return None

        def call(step: int, timestep: torch.Tensor, tensors: dict[str, Any]) -> dict[str, Any]:
            tensors = callback(self.pipe, offset + step, timestep, tensors)
            if self.pipe.interrupt:
                raise _Stopped
            return tensors

        return call
