"""The editing engine: many instructions, each bound to its region, in one diffusion pass, on the
SD1.5 InstructPix2Pix family (PromptArtisanPipeline) or the SDXL one (PromptArtisanXLPipeline)."""

from promptartisan.engine.baseline import SequentialBaseline
from promptartisan.engine.families import FAMILIES, family_of, pipeline_class
from promptartisan.engine.pipeline import PromptArtisanPipeline
from promptartisan.engine.pipeline_xl import PromptArtisanXLPipeline
from promptartisan.engine.region_pass import (
    DEFAULT_ATTENTION_BOOST,
    MAX_REGIONS,
    PromptArtisanPipelineOutput,
)
from promptartisan.engine.regions import Region, RegionError

__all__ = [
    "DEFAULT_ATTENTION_BOOST",
    "FAMILIES",
    "MAX_REGIONS",
    "PromptArtisanPipeline",
    "PromptArtisanPipelineOutput",
    "PromptArtisanXLPipeline",
    "Region",
    "RegionError",
    "SequentialBaseline",
    "family_of",
    "pipeline_class",
]
