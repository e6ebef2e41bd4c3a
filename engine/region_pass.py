"""What every PromptArtisan pipeline does around its backbone, whatever the family (DESIGN.md,
"The engine", steps 2, 6–7, and "Engine families"): the checks every call has, the checked call
with its regions, stopping a run, stock's step callback, installing the attention processors
for one call and the pixel-exact paste-back.

What only the UNet families (SD1.5 and SDXL InstructPix2Pix) share is unet_pass.py; each
family's pipeline keeps its own `__call__` and denoising loop and calls these, so the region
semantics are written once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers.utils import BaseOutput

from promptartisan.engine.regions import LabelMaps, Region, feather_mask, prepare_regions

MAX_REGIONS = 8


@dataclass
class PromptArtisanPipelineOutput(BaseOutput):
    """`images`: the edited images (PIL list, numpy array or latents, per `output_type`); empty
    when the run was stopped. `interrupted`: a callback stopped it with `pipe.interrupt_run()`."""

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    interrupted: bool = False


@dataclass
class RegionCall:
    """One checked call: the source image (RGB), its usable regions with their boolean masks
    (n, H, W), the composite label maps at every attention resolution, the working size (a
    multiple of the VAE's factor) and the number of denoising steps to blend."""

    source: PIL.Image.Image
    regions: list[Region]
    masks: np.ndarray
    maps: LabelMaps
    height: int
    width: int
    blend_steps: int

    def inside(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """The union of the regions at latent resolution, (1, 1, h, w): 1 inside, 0 outside."""
        return (self.maps.labels[self.maps.shapes[0]] > 0).to(device=device, dtype=dtype)[None,
                                                                                            None]


class RegionPassMixin:
    """The parts of a PromptArtisan pipeline that don't depend on its backbone. The pipeline has
    `image_processor`, as diffusers' do, and names the tensors a step callback may see
    (`_callback_tensor_inputs`)."""

    _callback_tensor_inputs: list[str] = ["latents", "prompt_embeds"]
    _interrupt = False

    def check_regions(self, image: PIL.Image.Image | np.ndarray, regions: Sequence[Region],
                      num_inference_steps: int, blend_steps: int | None, feather: int,
                      max_regions: int, output_type: str,
                      callback_on_step_end_tensor_inputs: Sequence[str]
                      ) -> tuple[PIL.Image.Image, list[Region], np.ndarray, list[int], int]:
        """The checks every family's call has, before any model runs: the source image (RGB),
        the usable regions, their masks (n, H, W) and groups, and the steps to blend (None:
        half). A new call is not stopped yet."""
        source = source_image(image)
        regions, masks, groups = prepare_regions(regions, source.size, max_regions)
        blend_steps = num_inference_steps // 2 if blend_steps is None else blend_steps
        if num_inference_steps < 1 or blend_steps < 0 or feather < 0:
            raise ValueError("num_inference_steps must be ≥ 1 and blend_steps and feather ≥ 0")
        if output_type not in ("pil", "np", "latent"):
            raise ValueError(f"output_type must be 'pil', 'np' or 'latent', not {output_type!r}")
        unknown = set(callback_on_step_end_tensor_inputs) - set(self._callback_tensor_inputs)
        if unknown:
            raise ValueError(f"callback tensors {sorted(unknown)} are not among "
                             f"{self._callback_tensor_inputs}")
        self._interrupt = False
        return source, regions, masks, groups, blend_steps

    def interrupt_run(self) -> None:
        """Stop the running call after the current step (for a callback: the UI's stop button)."""
        self._interrupt = True

    @property
    def interrupt(self) -> bool:
        return self._interrupt

    def step_callback(self, callback: Callable[..., dict[str, Any]], index: int,
                      timestep: torch.Tensor, names: Sequence[str], **tensors: torch.Tensor
                      ) -> tuple[torch.Tensor, ...]:
        """Stock's `callback_on_step_end(pipe, step, timestep, {name: tensor})`: it sees the
        tensors named in `names` and may replace any; returns `tensors`, in their order, with
        its replacements."""
        outputs = callback(self, index, timestep, {name: tensors[name] for name in names})
        return tuple(outputs.pop(name, tensor) for name, tensor in tensors.items())

    def paste_back(self, decoded: torch.Tensor, call: RegionCall, preserve_background: bool,
                   feather: int, output_type: str) -> list[PIL.Image.Image] | np.ndarray:
        """The decoded image at the source's size (design step 7): with `preserve_background`,
        pasted into the source through the union of the masks feathered over `feather` pixels,
        so pixels farther away are the source's own, bit for bit."""
        source = call.source
        if decoded.shape[-2:] != (source.height, source.width):
            decoded = F.interpolate(decoded.float(), size=(source.height, source.width),
                                    mode="bicubic", antialias=True, align_corners=False)
        result = self.image_processor.postprocess(decoded, output_type="np")
        if preserve_background:
            alpha = feather_mask(call.masks.any(axis=0), feather)[None, :, :, None]
            original = np.asarray(source, dtype=np.float32)[None] / 255.0
            result = np.where(alpha > 0, alpha * result + (1.0 - alpha) * original, original)
        return self.image_processor.numpy_to_pil(result) if output_type == "pil" else result


def is_step_end(index: int, timesteps: torch.Tensor, num_inference_steps: int, order: int
                ) -> bool:
    """Whether UNet call `index` ends a denoising step, as stock counts them on its progress
    bar: a solver of order k calls the UNet k times a step, after the calls of its warm-up
    (PNDM's Runge-Kutta start)."""
    num_warmup_steps = len(timesteps) - num_inference_steps * order
    return index + 1 == len(timesteps) or (index + 1 > num_warmup_steps
                                           and (index + 1) % order == 0)


class AttentionControlOfCall(Protocol):
    """What `routed` needs of a family's attention control."""

    def processors(self, current: dict[str, Any]) -> dict[str, Any]: ...


@contextmanager
def routed(model: torch.nn.Module, control: AttentionControlOfCall) -> Iterator[None]:
    """The backbone (a UNet, a Flux transformer) with `control`'s processors for one call; its
    own ones again afterwards, even when the call fails, so between calls the components are
    stock's."""
    original = model.attn_processors
    model.set_attn_processor(control.processors(original))
    try:
        yield
    finally:
        model.set_attn_processor(original)


def source_image(image: PIL.Image.Image | np.ndarray) -> PIL.Image.Image:
    """The image to edit as RGB: a PIL image, or an (H, W, 3) array, uint8 or float in [0, 1]."""
    if isinstance(image, PIL.Image.Image):
        source = image.convert("RGB")
    elif isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[-1] == 3:
        if image.dtype != np.uint8:
            image = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
        source = PIL.Image.fromarray(image)
    else:
        raise ValueError("image must be a PIL image or an (height, width, 3) array")
    if min(source.size) < 8:
        raise ValueError(f"image is {source.width}×{source.height}; it must be at least 8×8")
    return source


