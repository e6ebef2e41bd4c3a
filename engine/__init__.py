"""The editing engine: many instructions, each bound to its region, in one diffusion pass."""

from promptartisan.engine.baseline import SequentialBaseline
from promptartisan.engine.pipeline import (
    DEFAULT_ATTENTION_BOOST,
    MAX_REGIONS,
    PromptArtisanPipeline,
    PromptArtisanPipelineOutput,
)
from promptartisan.engine.regions import Region, RegionError

__all__ = [
    "DEFAULT_ATTENTION_BOOST",
    "MAX_REGIONS",
    "PromptArtisanPipeline",
    "PromptArtisanPipelineOutput",
    "Region",
    "RegionError",
    "SequentialBaseline",
]
