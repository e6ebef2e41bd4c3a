"""The attention processors at processor level, on a real attention layer of each family's tiny
UNet (SD1.5; SDXL, whose context is both text encoders side by side): cross-attention routing,
self-attention group blocking, the eDiff-I boost."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import box_mask
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor2_0
from engine_families import FAMILY_NAMES, tiny_folder

from promptartisan import models
from promptartisan.engine.attention import (
    AttentionControl,
    GroupSelfAttnProcessor,
    RoutedCrossAttnProcessor,
    routed_attention,
)
from promptartisan.engine.layout import build_layout
from promptartisan.engine.regions import label_maps

SHAPE = (6, 8)  # an attention resolution: 48 pixels
SIZE = (8, 6)
CHUNK = 77
LEFT = box_mask(SIZE, (0, 0, 4, 4))
RIGHT = box_mask(SIZE, (4, 0, 8, 4))
BOTTOM_LEFT = box_mask(SIZE, (0, 4, 3, 6))


@pytest.fixture(scope="module", params=FAMILY_NAMES)
def block(tiny_dir: Path, request: pytest.FixtureRequest) -> torch.nn.Module:
    """The first transformer block of the UNet's finest attention level: SD1.5 attends from its
    first level, SDXL from its second."""
    unet = models.load_from(UNet2DConditionModel, str(tiny_folder(tiny_dir, request.param)),
                            subfolder="unet")
    first = next(down for down in unet.down_blocks if hasattr(down, "attentions"))
    return first.attentions[0].transformer_blocks[0]


def widths(block: torch.nn.Module) -> tuple[int, int]:
    """The block's pixel features and its context's (the text encoders') features."""
    return block.attn1.to_q.in_features, block.attn2.to_k.in_features


def control_for(masks: list[np.ndarray], orders: list[int], groups: list[int],
                boost: float = 0.0, sigma: float = 0.0) -> AttentionControl:
    maps = label_maps(torch.from_numpy(np.stack(masks)), orders, groups, [SHAPE])
    words = torch.zeros(len(masks) + 1, CHUNK, dtype=torch.bool)
    for k in range(len(masks)):
        words[k, 1:4 + k] = True  # SOT at 0, then 3 + k words, then EOT/PAD
    control = AttentionControl(maps, words, boost, "cpu")
    control.sigma = sigma
    return control


class Projecting(RoutedCrossAttnProcessor):
    """Projects the context it is called with, as `AttentionControl.set_context` does for the
    pipeline once per call."""

    def __call__(self, attn: torch.nn.Module, hidden: torch.Tensor, ctx: torch.Tensor
                 ) -> torch.Tensor:
        self.project(attn, ctx)
        return super().__call__(attn, hidden, ctx)


def context(prompts: list[torch.Tensor], null: torch.Tensor) -> torch.Tensor:
    """The pipeline's batch: [c_1, …, c_n, c_null] for the text row, c_null tiled for the two
    guidance rows."""
    text = torch.cat([*prompts, null], dim=1)
    return torch.cat([text, null.repeat(2, len(prompts) + 1, 1)])


def pixels(mask: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(mask.flatten()).nonzero().squeeze(1)


def stock(attn: torch.nn.Module, hidden: torch.Tensor, ctx: torch.Tensor | None = None
          ) -> torch.Tensor:
    return AttnProcessor2_0()(attn, hidden, ctx)


def inputs(block: torch.nn.Module, seed: int, n: int
           ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    features, text = widths(block)
    hidden = torch.randn(3, 48, features, generator=gen)
    prompts = [torch.randn(1, CHUNK, text, generator=gen) for _ in range(n)]
    return hidden, prompts, torch.randn(1, CHUNK, text, generator=gen)


def test_region_pixels_read_only_their_prompt_background_only_the_null(block) -> None:
    attn = block.attn2
    hidden, prompts, null = inputs(block, 0, 2)
    out = Projecting(control_for([LEFT, RIGHT], [0, 0], [1, 2]))(
        attn, hidden, context(prompts, null))
    background = ~(LEFT | RIGHT)
    for mask, ctx in ((LEFT, prompts[0]), (RIGHT, prompts[1]), (background, null)):
        idx = pixels(mask)
        expected = stock(attn, hidden[:1, idx], ctx)
        assert torch.allclose(out[:1, idx], expected, atol=1e-6)
    assert torch.allclose(out[1:], stock(attn, hidden[1:], null.repeat(2, 1, 1)), atol=1e-6)


def test_changing_prompt_j_changes_only_pixels_labeled_j(block) -> None:
    attn = block.attn2
    proc = Projecting(control_for([LEFT, RIGHT], [0, 0], [1, 2], 0.3, 5.0))
    hidden, prompts, null = inputs(block, 1, 2)
    base = proc(attn, hidden, context(prompts, null))
    background = pixels(~(LEFT | RIGHT))
    for j, (own, other) in enumerate(((LEFT, RIGHT), (RIGHT, LEFT))):
        changed = list(prompts)
        changed[j] = prompts[j] + torch.randn_like(prompts[j])
        out = proc(attn, hidden, context(changed, null))
        assert torch.equal(out[:1, pixels(other)], base[:1, pixels(other)])
        assert torch.equal(out[:1, background], base[:1, background])
        assert torch.equal(out[1:], base[1:])
        assert (out[:1, pixels(own)] - base[:1, pixels(own)]).abs().amax() > 1e-4
    rewritten = [p + torch.randn_like(p) for p in prompts]  # no prompt reaches the background
    out = proc(attn, hidden, context(rewritten, null))
    assert torch.equal(out[:1, background], base[:1, background])


def test_overlap_is_routed_to_the_higher_order(block) -> None:
    attn = block.attn2
    wide = box_mask(SIZE, (2, 0, 8, 4))  # overlaps LEFT on columns 2–3
    overlap = pixels(LEFT & wide)
    hidden, prompts, null = inputs(block, 2, 2)
    for orders, winner in (([1, 0], 0), ([0, 1], 1)):
        proc = Projecting(control_for([LEFT, wide], orders, [1, 2]))
        out = proc(attn, hidden, context(prompts, null))
        assert torch.allclose(out[:1, overlap], stock(attn, hidden[:1, overlap], prompts[winner]),
                              atol=1e-6)
        loser = list(prompts)
        loser[1 - winner] = prompts[1 - winner] * 3
        assert torch.equal(proc(attn, hidden, context(loser, null))[:1, overlap], out[:1, overlap])


def test_self_attention_is_blocked_between_groups_only(block) -> None:
    attn = block.attn1
    # LEFT and BOTTOM_LEFT share group 1; RIGHT is group 2.
    proc = GroupSelfAttnProcessor(control_for([LEFT, RIGHT, BOTTOM_LEFT], [0, 0, 0], [1, 2, 1]))
    hidden = torch.randn(3, 48, widths(block)[0], generator=torch.Generator().manual_seed(3))
    base = proc(attn, hidden)
    left = pixels(LEFT)

    def perturbed(mask: np.ndarray) -> torch.Tensor:
        changed = hidden.clone()
        changed[:, pixels(mask)] += 3 * torch.randn_like(changed[:, pixels(mask)])
        return proc(attn, changed)

    assert torch.allclose(perturbed(RIGHT)[:, left], base[:, left], atol=1e-6)
    assert (perturbed(BOTTOM_LEFT)[:, left] - base[:, left]).abs().amax() > 1e-4
    background = ~(LEFT | RIGHT | BOTTOM_LEFT)
    assert (perturbed(background)[:, left] - base[:, left]).abs().amax() > 1e-4
    assert (perturbed(RIGHT)[:, pixels(background)] - base[:, pixels(background)]).abs().amax() \
        > 1e-4


def test_self_attention_equals_attention_with_the_group_mask(block) -> None:
    """The gathers compute exactly masked attention: -inf between pixels of different groups."""
    attn = block.attn1
    control = control_for([LEFT, RIGHT, BOTTOM_LEFT], [0, 0, 0], [1, 2, 1])
    hidden = torch.randn(3, 48, widths(block)[0], generator=torch.Generator().manual_seed(7))
    groups = torch.zeros(48, dtype=torch.long)
    groups[pixels(LEFT)], groups[pixels(BOTTOM_LEFT)], groups[pixels(RIGHT)] = 1, 1, 2
    blocked = (groups[:, None] != groups[None, :]) & (groups[:, None] > 0) & (groups[None, :] > 0)
    mask = torch.zeros(48, 48).masked_fill(blocked, -math.inf)

    def heads(x: torch.Tensor) -> torch.Tensor:
        return x.view(3, 48, attn.heads, -1).transpose(1, 2)

    q, k, v = heads(attn.to_q(hidden)), heads(attn.to_k(hidden)), heads(attn.to_v(hidden))
    weights = ((q @ k.transpose(-1, -2)) * attn.scale + mask).softmax(-1)
    out = (weights @ v).transpose(1, 2).reshape(3, 48, -1)
    expected = attn.to_out[1](attn.to_out[0](out)) / attn.rescale_output_factor
    if attn.residual_connection:
        expected = expected + hidden
    assert torch.allclose(GroupSelfAttnProcessor(control)(attn, hidden), expected, atol=1e-5)


def test_self_attention_is_plain_with_one_group(block) -> None:
    attn = block.attn1
    control = control_for([LEFT, RIGHT], [0, 0], [1, 1])
    assert not control.layouts[48].blocked
    hidden = torch.randn(3, 48, widths(block)[0], generator=torch.Generator().manual_seed(4))
    assert torch.allclose(GroupSelfAttnProcessor(control)(attn, hidden), stock(attn, hidden),
                          atol=1e-6)


def test_boost_raises_word_tokens_only() -> None:
    """With the identity as values, the attention's output is its weights."""
    gen = torch.Generator().manual_seed(5)
    words = torch.zeros(2, CHUNK, dtype=torch.bool)
    words[0, 1:6] = True
    labels = torch.ones(10, dtype=torch.long)
    layout = build_layout(labels, labels, words, "mask", torch.device("cpu"))
    query = torch.randn(1, 4, 10, 8, generator=gen)
    key = torch.randn(1, 4, 2 * CHUNK, 8, generator=gen)
    value = torch.eye(2 * CHUNK).expand(1, 4, -1, -1)
    plain, boosted = (routed_attention(query, key, value, layout, torch.tensor(w), 8**-0.5)
                      for w in (0.0, 0.5))
    assert not plain[..., CHUNK:].any() and not boosted[..., CHUNK:].any()  # no other chunk
    own = words[0]
    assert (boosted[..., :CHUNK][..., own].sum(-1) > plain[..., :CHUNK][..., own].sum(-1)).all()
    ratio = boosted[..., :CHUNK][..., ~own] / plain[..., :CHUNK][..., ~own]
    assert torch.allclose(ratio, ratio[..., :1].expand_as(ratio))  # SOT, EOT, PAD untouched


def test_boost_scales_with_noise_level_and_reaches_region_pixels_only(block) -> None:
    attn = block.attn2
    hidden, prompts, null = inputs(block, 6, 2)
    ctx = context(prompts, null)
    off = Projecting(control_for([LEFT, RIGHT], [0, 0], [1, 2]))(attn, hidden, ctx)
    control = control_for([LEFT, RIGHT], [0, 0], [1, 2], boost=0.3, sigma=0.0)
    assert control.boost_weight() == 0.0
    assert torch.equal(Projecting(control)(attn, hidden, ctx), off)
    control.sigma = 5.0
    assert control.boost_weight() == pytest.approx(0.3 * math.log(6.0))
    on = Projecting(control)(attn, hidden, ctx)
    background = pixels(~(LEFT | RIGHT))
    assert torch.equal(on[:1, background], off[:1, background]) and torch.equal(on[1:], off[1:])
    for mask in (LEFT, RIGHT):
        assert (on[:1, pixels(mask)] - off[:1, pixels(mask)]).abs().amax() > 1e-5


def test_context_is_projected_once_and_again_when_it_changes(block, monkeypatch) -> None:
    attn = block.attn2
    projections: list[int] = []
    forward = attn.to_k.forward

    def counted(x: torch.Tensor) -> torch.Tensor:
        projections.append(x.shape[0])
        return forward(x)

    monkeypatch.setattr(attn.to_k, "forward", counted)
    control = control_for([LEFT, RIGHT], [0, 0], [1, 2])
    proc = RoutedCrossAttnProcessor(control)
    hidden, prompts, null = inputs(block, 2, 2)
    ctx = context(prompts, null)
    with pytest.raises(RuntimeError, match="set_context"):
        proc(attn, hidden, ctx)
    monkeypatch.setattr(attn, "processor", proc)  # installed, as the pipeline does
    control.set_context(block, ctx)
    first = proc(attn, hidden, ctx)
    control.set_context(block, ctx)  # a second step
    assert torch.equal(proc(attn, hidden, ctx), first)
    assert len(projections) == 2  # the text row and the null rows, once

    ctx[0, :CHUNK] += 1.0  # prompt 1 changes in place (a callback may do this)
    control.set_context(block, ctx)
    changed = proc(attn, hidden, ctx)
    assert len(projections) == 4
    assert torch.equal(changed, Projecting(control_for([LEFT, RIGHT], [0, 0], [1, 2]))(
        attn, hidden, ctx))
    assert not torch.equal(changed[:1, pixels(LEFT)], first[:1, pixels(LEFT)])

    reinstalled = control.processors({"block.attn2.processor": None})["block.attn2.processor"]
    monkeypatch.setattr(attn, "processor", reinstalled)
    control.set_context(block, ctx)  # the same context, but processors that haven't seen it
    assert torch.equal(reinstalled(attn, hidden, ctx), changed)
