"""The engine's backbone families and how a model's config names its own: SD1.5 InstructPix2Pix
(timbrooks/instruct-pix2pix, MagicBrush) and SDXL InstructPix2Pix (sdxl-instructpix2pix-768,
CosXL Edit, HQ-Edit). The UNet's config tells them apart, whatever the model is called."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from diffusers import DiffusionPipeline

from promptartisan.engine.pipeline import PromptArtisanPipeline
from promptartisan.engine.pipeline_xl import PromptArtisanXLPipeline

FAMILIES: dict[str, type[DiffusionPipeline]] = {"sd15": PromptArtisanPipeline,
                                                "sdxl": PromptArtisanXLPipeline}


def family_of(unet_config: Mapping[str, Any]) -> str:
    """"sdxl" for a UNet that reads SDXL's pooled text and time ids (`addition_embed_type`
    "text_time"), else "sd15"; the pipeline then refuses a UNet it can't drive, with the reason."""
    return "sdxl" if unet_config.get("addition_embed_type") == "text_time" else "sd15"


def pipeline_class(unet_config: Mapping[str, Any]) -> type[DiffusionPipeline]:
    """The PromptArtisan pipeline that drives a UNet with this config."""
    return FAMILIES[family_of(unet_config)]
