"""The editing engine: many instructions, each bound to its region, in one diffusion pass, on one
of three families: SD1.5 InstructPix2Pix (PromptArtisanPipeline), SDXL InstructPix2Pix
(PromptArtisanXLPipeline) and FLUX.1 Kontext, an MMDiT (PromptArtisanKontextPipeline). All take
`pipe(image, regions, ...)` and give a PromptArtisanPipelineOutput; `family_of` reads a model's
family from its config and `pipeline_class` names its pipeline."""

from promptartisan.engine.baseline import SequentialBaseline
from promptartisan.engine.families import FAMILIES, family_of, pipeline_class
from promptartisan.engine.pipeline import PromptArtisanPipeline
from promptartisan.engine.pipeline_kontext import PromptArtisanKontextPipeline
from promptartisan.engine.pipeline_xl import PromptArtisanXLPipeline
from promptartisan.engine.region_pass import MAX_REGIONS, PromptArtisanPipelineOutput
from promptartisan.engine.regions import Region, RegionError
from promptartisan.engine.unet_pass import DEFAULT_ATTENTION_BOOST

__all__ = [
    "DEFAULT_ATTENTION_BOOST",
    "FAMILIES",
    "MAX_REGIONS",
    "PromptArtisanKontextPipeline",
    "PromptArtisanPipeline",
    "PromptArtisanPipelineOutput",
    "PromptArtisanXLPipeline",
    "Region",
    "RegionError",
    "SequentialBaseline",
    "family_of",
    "pipeline_class",
]
