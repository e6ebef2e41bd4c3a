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


@pytest.fixture(scope="module")
def unet(tiny_dir: Path) -> UNet2DConditionModel:
    settings = Settings(tiny=True, tiny_dir=tiny_dir, device="cpu", dtype="float32")
    return models.load(UNet2DConditionModel, "instruct-pix2pix", settings, subfolder="unet")


def install(unet: UNet2DConditionModel, seed: int, kernel: str
            ) -> tuple[AttentionControl, torch.Tensor]:
    """Processors for three regions at a random layout on a 6×8 latent, in two or three groups
    (by the seed), and the context they were given."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((3, 6, 8), dtype=bool)
    masks[0, :rng.integers(2, 4), :rng.integers(2, 4)] = True
    masks[1, rng.integers(3, 5):, rng.integers(4, 7):] = True
    masks[2, :rng.integers(2, 3), rng.integers(5, 7):] = True
    groups = ([1, 2, 3], [1, 1, 2], [2, 1, 2])[seed % 3]
    shapes = attention_shapes(6, 8, len(unet.config.block_out_channels))
    words = torch.zeros(4, 77, dtype=torch.bool)
    words[:3, 1:4] = True
    control = AttentionControl(label_maps(torch.from_numpy(masks), [0, 0, 0], groups, shapes),
                               words, 0.3, "cpu", kernel=kernel)
    unet.set_attn_processor(control.processors(unet.attn_processors))
    context = torch.randn(3, 77 * 4, unet.config.cross_attention_dim,
                          generator=torch.Generator().manual_seed(seed))
    control.set_context(unet, context)
    return control, context


def sample(seed: int) -> torch.Tensor:
    return torch.randn(3, 8, 6, 8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kernel", ["mask", "flex"])
@pytest.mark.slow
def test_unet_with_the_processors_traces_without_a_graph_break(unet, kernel: str) -> None:
    control, context = install(unet, 0, kernel)
    control.sigma = 2.0
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # flex_attention traced for the eager backend
        explanation = torch._dynamo.explain(unet)(sample(0), torch.tensor(500.0),
                                                  encoder_hidden_states=context)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.parametrize("kernel", ["mask", "flex"])
@pytest.mark.slow
def test_unet_compiles_once_across_steps_and_layouts(unet, kernel: str) -> None:
    backend = CountingBackend()
    compiled = torch.compile(unet, backend=backend, fullgraph=True)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for seed in range(3):
                control, context = install(unet, seed, kernel)
                for sigma in (8.0, 0.5):
                    control.sigma = sigma
                    args = (sample(seed), torch.tensor(500.0))
                    ours = compiled(*args, encoder_hidden_states=context).sample
                    assert torch.allclose(ours, unet(*args, encoder_hidden_states=context)
                                          .sample, atol=1e-5)
    finally:
        torch._dynamo.reset()
    assert backend.graphs == 1  # 3 layouts (3, 2 and 2 groups) × 2 boost weights


@pytest.mark.slow
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
