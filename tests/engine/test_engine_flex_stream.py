"""A server's stream of requests through the flex kernel: sequences padded to a fixed ladder of
lengths, so flex_attention compiles a bounded number of shapes (torch compiles once per shape
and, past its recompile limit, silently runs the unfused kernel), with the same output as the
unpadded attention; Kontext's tokens put in the block mask's order once around the transformer
instead of in each layer."""

from __future__ import annotations

import math
import random
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import box_mask

from promptartisan.engine import PromptArtisanKontextPipeline, Region, flex
from promptartisan.engine.attention_rules import may_read_pixel
from promptartisan.engine.joint_attention import JointAttentionControl
from promptartisan.tiny import write_tiny_models

WORDS = ["red", "snow", "gold", "a hat", "glowing", "wooden", "a watercolor", "flowers", "cat"]


@pytest.fixture(scope="module")
def kontext(tiny_dir: Path) -> PromptArtisanKontextPipeline:
    folder = write_tiny_models(tiny_dir, ["flux-kontext"]) / "flux-kontext"
    pipe = PromptArtisanKontextPipeline.from_pretrained(str(folder), dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


class CountingBackend:
    """Runs the captured graph as it is (no inductor on the CPU test machine)."""

    def __call__(self, graph: torch.fx.GraphModule, inputs: list[torch.Tensor]):
        return graph.forward


def test_the_ladder_bounds_lengths_and_padding() -> None:
    lengths = range(1, 70_000, 37)
    for length in lengths:
        padded = flex.padded_length(length)
        assert padded % flex.BLOCK_SIZE == 0 and padded >= length
        assert padded <= flex.BLOCK_SIZE * math.ceil(1.19 * math.ceil(length / flex.BLOCK_SIZE))
    rungs = {flex.padded_length(length) for length in lengths}
    doublings = math.log2(70_000 / flex.BLOCK_SIZE)
    assert len(rungs) <= flex.RUNGS_PER_DOUBLING * doublings + 2
    assert rungs <= set(flex.ladder(70_000 + flex.BLOCK_SIZE))


@pytest.mark.filterwarnings("ignore::UserWarning")  # eager flex_attention's advice to compile
@pytest.mark.parametrize("length", [5, 200, 1000])
def test_padded_attention_equals_the_unpadded_dense_one(length: int) -> None:
    generator = torch.Generator().manual_seed(length)
    groups = torch.sort(torch.randint(0, 4, (length,), generator=generator)).values
    query, key, value = torch.randn(3, 2, 3, length, 16, generator=generator)
    mask = flex.group_block_mask(groups, flex.padded_length(length))
    assert mask.seq_lengths[0] > length
    ours = flex.flex_self_attention(query, key, value, mask, 0.25)
    dense = F.scaled_dot_product_attention(
        query, key, value, attn_mask=may_read_pixel(groups[:, None], groups[None, :]),
        scale=0.25)
    assert ours.shape == dense.shape
    assert torch.allclose(ours, dense, atol=1e-6)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.slow
def test_thirty_edits_compile_a_bounded_number_of_shapes(kontext, photo, monkeypatch) -> None:
    """30 Kontext edits of varied prompts (so varied T5 lengths), picture sizes and region
    counts through the flex kernel's compiled path on the CPU: one compile per padded length,
    far fewer than the distinct sequence lengths; each edit equal to the dense mask's."""
    counted = flex.CompiledFlex(backend=CountingBackend(), devices=("cpu",))
    monkeypatch.setattr(flex, "FLEX", counted)
    rng = random.Random(0)
    lengths: list[int] = []
    compiles: list[int] = []
    torch._dynamo.reset()
    try:
        for edit in range(30):
            width, height = rng.choice([48, 96, 160, 224]), rng.choice([32, 80, 144, 192])
            image = photo.resize((width, height))
            n = rng.choice([2, 3])
            prompts = [" and ".join(rng.sample(WORDS, rng.randint(1, 4))) for _ in range(n)]
            regions = [Region(box_mask(image.size, (k * width // n, 0, (k + 1) * width // n,
                                                    height)), f"make it {prompt}", group=k + 1)
                       for k, prompt in enumerate(prompts)]
            text = sum(len(kontext.tokenizer_2(r.prompt).input_ids) for r in regions)
            lengths.append(text + len(kontext.tokenizer_2("").input_ids)
                           + 2 * (width // 16) * (height // 16))
            edits = [kontext(image, regions, num_inference_steps=1, kernel=kernel,
                             generator=torch.Generator().manual_seed(edit),
                             output_type="latent").images
                     for kernel in ("flex", "mask")]
            compiles.append(counted.compiles)
            assert torch.allclose(edits[0], edits[1], atol=1e-5), edit
    finally:
        torch._dynamo.reset()
    buckets = {flex.padded_length(length) for length in lengths}
    assert len(set(lengths)) > 8  # more than torch's recompile limit: unpadded, it would fall
    assert counted.compiles == len(buckets) < len(set(lengths))
    assert len(buckets) >= 3  # the stream spans several rungs
    print(f"30 edits: {len(set(lengths))} sequence lengths, {len(buckets)} padded lengths, "
          f"{counted.compiles} compiles (after each edit: {compiles})")


@pytest.mark.filterwarnings("ignore")
@pytest.mark.slow
def test_kontext_tokens_are_ordered_once_around_the_transformer(kontext, small_photo,
                                                                monkeypatch) -> None:
    """In the pipeline every joint layer gets its tokens already in the block mask's order
    (none gathers), and the edit equals the one whose layers each gather and scatter."""
    regions = [Region(box_mask(small_photo.size, (0, 0, 16, 48)), "make it red", group=1),
               Region(box_mask(small_photo.size, (32, 16, 64, 48)), "add snow", group=2)]
    seen: list[bool] = []
    attend = JointAttentionControl.attend

    def recorded(self, *args):
        seen.append(self.ordered)
        return attend(self, *args)

    monkeypatch.setattr(JointAttentionControl, "attend", recorded)

    def edit() -> np.ndarray:
        return kontext(small_photo, regions, num_inference_steps=2, kernel="flex",
                       generator=torch.Generator().manual_seed(0), preserve_background=False,
                       output_type="np").images

    once = edit()
    layers = len(kontext.transformer.transformer_blocks) + len(
        kontext.transformer.single_transformer_blocks)
    assert seen == [True] * 2 * layers
    seen.clear()
    monkeypatch.setattr(JointAttentionControl, "in_token_order",
                        lambda self, transformer: nullcontext())
    per_layer = edit()
    assert seen == [False] * 2 * layers
    assert np.abs(once - per_layer).max() <= 1e-6
