"""The engine's backbone families and how a model's config names its own: SD1.5 InstructPix2Pix
(timbrooks/instruct-pix2pix, MagicBrush), SDXL InstructPix2Pix (sdxl-instructpix2pix-768,
CosXL Edit, HQ-Edit) and FLUX.1 Kontext (an MMDiT). The UNet's config tells the UNet families
apart, the pipeline's config (model_index.json) a Flux transformer, whatever the model is
called."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from diffusers import DiffusionPipeline

from promptartisan.engine.pipeline import PromptArtisanPipeline
from promptartisan.engine.pipeline_kontext import PromptArtisanKontextPipeline
from promptartisan.engine.pipeline_xl import PromptArtisanXLPipeline

FAMILIES: dict[str, type[DiffusionPipeline]] = {"sd15": PromptArtisanPipeline,
                                                "sdxl": PromptArtisanXLPipeline,
                                                "kontext": PromptArtisanKontextPipeline}


def family_of(unet_config: Mapping[str, Any],
              pipeline_config: Mapping[str, Any] | None = None) -> str:
    """"kontext" for a pipeline whose transformer is a Flux one (FLUX.1 Kontext's
    model_index.json names `transformer: FluxTransformer2DModel`); "sdxl" for a UNet that reads
    SDXL's pooled text and time ids (`addition_embed_type` "text_time"), else "sd15"; the
    pipeline then refuses a model it can't drive, with the reason."""
    transformer = (pipeline_config or {}).get("transformer") or [None, None]
    if transformer[-1] == "FluxTransformer2DModel":
        return "kontext"
    return "sdxl" if unet_config.get("addition_embed_type") == "text_time" else "sd15"


def pipeline_class(unet_config: Mapping[str, Any],
                   pipeline_config: Mapping[str, Any] | None = None
                   ) -> type[DiffusionPipeline]:
    """The PromptArtisan pipeline that drives a model with these configs."""
    return FAMILIES[family_of(unet_config, pipeline_config)]
