"""torch.compile on the UNet with the processors installed: one graph without a break, compiled
once for a call shape, whatever the step (the boost weight changes) or the mask layout."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import box_mask
from diffusers import UNet2DConditionModel

from promptartisan import models
from promptartisan.engine import PromptArtisanPipeline, Region
from promptartisan.engine.attention import AttentionControl
from promptartisan.engine.regions import attention_shapes, label_maps
from promptartisan.settings import Settings

SIZE = (64, 48)


@pytest.fixture
def settings(tiny_dir: Path) -> Settings:
    return Settings(tiny=True, tiny_dir=tiny_dir, device="cpu", dtype="float32")


class CountingBackend:
    """A torch.compile backend that runs the captured graph as it is and counts the graphs."""

    def __init__(self) -> None:
        self.graphs = 0

    def __call__(self, graph: torch.fx.GraphModule, inputs: list[torch.Tensor]):
        self.graphs += 1
        return graph.forward


@pytest.mark.parametrize("kernel", ["mask", "flex"])
def test_unet_with_the_processors_traces_without_a_graph_break(settings, kernel: str) -> None:
    unet = models.load(UNet2DConditionModel, "instruct-pix2pix", settings, subfolder="unet")
    shapes = attention_shapes(6, 8, len(unet.config.block_out_channels))
    masks = torch.from_numpy(np.stack([box_mask((8, 6), (0, 0, 4, 6)),
                                       box_mask((8, 6), (5, 1, 8, 4))]))
    words = torch.zeros(3, 77, dtype=torch.bool)
    words[:2, 1:4] = True
    control = AttentionControl(label_maps(masks, [0, 0], [1, 2], shapes), words, 0.3, "cpu",
                               kernel=kernel)
    control.sigma = 2.0
    unet.set_attn_processor(control.processors(unet.attn_processors))
    context = torch.randn(3, 77 * 3, unet.config.cross_attention_dim)
    control.set_context(unet, context)
    sample = torch.randn(3, 8, 6, 8)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # flex_attention traced for the eager backend
        explanation = torch._dynamo.explain(unet)(sample, torch.tensor(500.0),
                                                  encoder_hidden_states=context)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


def test_compiled_pipeline_compiles_once_across_steps_and_layouts(settings, small_photo) -> None:
    pipe = models.load(PromptArtisanPipeline, "instruct-pix2pix", settings, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    layouts = [[Region(box_mask(SIZE, (0, 0, 32, 48)), "make it red"),
                Region(box_mask(SIZE, (40, 8, 64, 40)), "add snow")],
               [Region(box_mask(SIZE, (8, 16, 56, 48)), "turn it into gold", order=1),
                Region(box_mask(SIZE, (0, 0, 24, 24)), "make it glow")]]

    def edit(regions: list[Region]) -> np.ndarray:
        return pipe(small_photo, regions, num_inference_steps=3, generator=torch.Generator()
                    .manual_seed(0), output_type="np").images

    eager = [edit(regions) for regions in layouts]
    backend = CountingBackend()
    pipe.unet.compile(backend=backend, fullgraph=True)
    try:
        compiled = [edit(regions) for regions in layouts]
    finally:
        torch._dynamo.reset()
    assert backend.graphs == 1  # 6 steps at 3 boost weights, 2 layouts: one graph
    for ours, reference in zip(compiled, eager, strict=True):
        assert np.abs(ours - reference).max() <= 1e-5
