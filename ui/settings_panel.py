"""The chat's settings panel (the gear button): its widgets, named after the `Settings` fields
they change. Apart from ui/app.py so that it can be built without starting a chat."""

from __future__ import annotations

from collections.abc import Sequence

import chainlit as cl
from chainlit.input_widget import Select, Slider, Switch, TextInput

from promptartisan import models
from promptartisan.settings import Settings


def settings_panel(settings: Settings, planners: Sequence[str]) -> cl.ChatSettings:
    """The settings panel; widget ids are the Settings fields they change, and each range
    reaches the current value (a config file may set more than the usual maximum)."""
    guidance = models.engine_guidance_scale(settings)  # unset: the engine family's
    return cl.ChatSettings([
        Slider(id="steps", label="Steps", initial=settings.steps, min=1,
               max=max(100, settings.steps), step=1,
               description="Denoising steps: more is slower and finer."),
        Slider(id="guidance_scale", label="Text guidance", initial=guidance,
               min=0, max=max(20, guidance), step=0.5,
               description="How strongly the edit follows the words."),
        Slider(id="image_guidance_scale", label="Image guidance",
               initial=settings.image_guidance_scale, min=0,
               max=max(5, settings.image_guidance_scale), step=0.1,
               description="How closely the result keeps to the picture."),
        TextInput(id="seed", label="Seed", initial="" if settings.seed is None
                  else str(settings.seed), placeholder="random",
                  description="A number makes results repeatable; empty means random."),
        Switch(id="preserve_background", label="Keep the background pixel-exact",
               initial=settings.preserve_background,
               description="Pixels far from every mask stay the original's."),
        Select(id="planner", label="Planner", values=list(planners),
               initial_value=settings.planner,
               description="Who reads the request: the planner the chat was started with, "
                           "or the offline rules planner."),
        Select(id="grounding_backend", label="Grounding", values=["auto", "clipseg",
               "grounded-sam"], initial_value=settings.grounding_backend,
               description="Finds each region: CLIPSeg (fast on CPU) or Grounded-SAM (GPU)."),
        Select(id="memory", label="Engine memory", values=["auto", "offload", "group-offload",
               "none"], initial_value=settings.memory,
               description=f"In use: {models.engine_setup(settings)}."),
    ])
