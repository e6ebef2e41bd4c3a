"""The tiny engine of each family for the engine tests, loaded as users load theirs
(`from_pretrained` on a saved folder), and a stock pass of its family at the image's size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import (
    DiffusionPipeline,
    StableDiffusionInstructPix2PixPipeline,
    StableDiffusionXLInstructPix2PixPipeline,
)

from promptartisan import models
from promptartisan.engine import FAMILIES
from promptartisan.tiny import write_tiny_models

FAMILY_NAMES = ["sd15", "sdxl"]  # the UNet families; FLUX.1 Kontext has its own tests
TINY_MODEL = {"sd15": "instruct-pix2pix", "sdxl": "instruct-pix2pix-xl"}
STOCK = {"sd15": StableDiffusionInstructPix2PixPipeline,
         "sdxl": StableDiffusionXLInstructPix2PixPipeline}


def tiny_folder(tiny_dir: Path, family: str) -> Path:
    return write_tiny_models(tiny_dir, [TINY_MODEL[family]]) / TINY_MODEL[family]


def tiny_engine(tiny_dir: Path, family: str, stock: bool = False, **kwargs: Any
                ) -> DiffusionPipeline:
    """The family's PromptArtisan pipeline (or with `stock`, diffusers' own), float32, quiet."""
    cls = STOCK[family] if stock else FAMILIES[family]
    if stock and family == "sdxl":
        kwargs.setdefault("add_watermarker", False)
    pipe = models.load_from(cls, str(tiny_folder(tiny_dir, family)), dtype=torch.float32,
                            **kwargs)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def stock_edit(stock: DiffusionPipeline, prompt: str, image: Any, **kwargs: Any) -> np.ndarray:
    """Stock at the image's own size with InstructPix2Pix's guidance of 7.5 (stock SDXL's
    defaults are its UNet's size and 5.0), as np."""
    if isinstance(stock, StableDiffusionXLInstructPix2PixPipeline):
        kwargs = {"height": image.height, "width": image.width, **kwargs}
    return stock(prompt, image=image, guidance_scale=7.5, output_type="np", **kwargs).images
