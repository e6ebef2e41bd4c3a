"""The one-call attention paths against a plain reference of the rules: each label's pixels
gathered and attended on their own (how the processors used to compute it, one small call per
route), at random layouts, on a tiny layer and a full-size SD 1.5 layer, for both kernels
(a dense boolean mask, and flex_attention, here run unfused on the CPU)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from diffusers.models.attention import BasicTransformerBlock

from promptartisan import models
from promptartisan.engine.attention import (
    AttentionControl,
    GroupSelfAttnProcessor,
    RoutedCrossAttnProcessor,
)
from promptartisan.engine.layout import sort_order
from promptartisan.engine.regions import label_maps
from promptartisan.settings import Settings

CHUNK = 77


@pytest.fixture(scope="module")
def tiny_block(tiny_dir: Path) -> torch.nn.Module:
    settings = Settings(tiny=True, tiny_dir=tiny_dir, device="cpu", dtype="float32")
    unet = models.load(UNet2DConditionModel, "instruct-pix2pix", settings, subfolder="unet")
    return unet.down_blocks[0].attentions[0].transformer_blocks[0]


@pytest.fixture(scope="module")
def sd15_block() -> torch.nn.Module:
    """The transformer block of SD 1.5's first level: 320 channels, 8 heads of 40, CLIP-L's
    768-wide context; random weights."""
    torch.manual_seed(0)
    return BasicTransformerBlock(dim=320, num_attention_heads=8, attention_head_dim=40,
                                 cross_attention_dim=768).eval()


def random_layout(seed: int, n: int, shape: tuple[int, int]
                  ) -> tuple[torch.Tensor, list[int], list[int]]:
    """n random boxes (overlapping, any order), groups drawn so that some regions share one."""
    rng = np.random.default_rng(seed)
    height, width = shape
    masks = np.zeros((n, height, width), dtype=bool)
    for k in range(n):
        y0, x0 = rng.integers(0, height - 1), rng.integers(0, width - 1)
        masks[k, y0:rng.integers(y0 + 1, height + 1), x0:rng.integers(x0 + 1, width + 1)] = True
    orders = rng.integers(0, 3, n).tolist()
    groups = rng.integers(1, max(2, n) + 1, n).tolist()
    return torch.from_numpy(masks), orders, groups


def heads(attn: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return x.view(x.shape[0], x.shape[1], attn.heads, -1).transpose(1, 2)


def finish(attn: torch.nn.Module, out: torch.Tensor) -> torch.Tensor:
    out = out.transpose(1, 2).reshape(out.shape[0], out.shape[2], -1)
    return attn.to_out[1](attn.to_out[0](out)) / attn.rescale_output_factor


def reference_cross(attn, hidden, ctx, labels, words, weight) -> torch.Tensor:
    """Each label's pixels gathered, attending to their own chunk; the boost per route."""
    num_chunks = words.shape[0]
    query = heads(attn, attn.to_q(hidden))
    key, value = heads(attn, attn.to_k(ctx[:1])), heads(attn, attn.to_v(ctx[:1]))
    null = ctx[1:, -CHUNK:]
    out = torch.empty_like(query)
    out[1:] = F.scaled_dot_product_attention(query[1:], heads(attn, attn.to_k(null)),
                                             heads(attn, attn.to_v(null)), scale=attn.scale)
    for label in labels.unique().tolist():
        chunk = label - 1 if label else num_chunks - 1
        pixels = (labels == label).nonzero().squeeze(1)
        q = query[:1, :, pixels]
        k = key[:, :, chunk * CHUNK:(chunk + 1) * CHUNK]
        v = value[:, :, chunk * CHUNK:(chunk + 1) * CHUNK]
        logits = (q @ k.transpose(-1, -2)) * attn.scale
        if label > 0:
            peak = logits.amax(dim=(-2, -1), keepdim=True).clamp_min(0)
            logits = logits + weight * peak * words[chunk]
        out[:1, :, pixels] = logits.softmax(-1) @ v
    return finish(attn, out)


def reference_self(attn, hidden, groups) -> torch.Tensor:
    """Background pixels read everything; a group's pixels read the background and their own
    group: each set of query pixels gathered with the keys it may read."""
    query, key, value = (heads(attn, layer(hidden)) for layer in (attn.to_q, attn.to_k, attn.to_v))
    out = torch.empty_like(query)
    background = groups == 0
    for group in groups.unique().tolist():
        own = (groups == group).nonzero().squeeze(1)
        keys = torch.arange(len(groups)) if group == 0 else (
            (groups == group) | background).nonzero().squeeze(1)
        out[:, :, own] = F.scaled_dot_product_attention(
            query[:, :, own], key[:, :, keys], value[:, :, keys], scale=attn.scale)
    return finish(attn, out)


def cases() -> list[tuple[str, int, int, tuple[int, int]]]:
    return [("tiny_block", seed, n, (6, 8)) for seed, n in ((0, 1), (1, 2), (2, 4), (3, 8))] + [
        ("sd15_block", seed, n, (16, 16)) for seed, n in ((4, 2), (5, 4), (6, 8))]


@pytest.mark.parametrize("kernel", ["mask", "flex"])
@pytest.mark.parametrize(("block_name", "seed", "n", "shape"), cases())
def test_one_call_paths_equal_the_per_route_reference(request, kernel: str, block_name: str,
                                                      seed: int, n: int,
                                                      shape: tuple[int, int]) -> None:
    block = request.getfixturevalue(block_name)
    masks, orders, groups = random_layout(seed, n, shape)
    maps = label_maps(masks, orders, groups, [shape])
    gen = torch.Generator().manual_seed(seed)
    words = torch.rand(n + 1, CHUNK, generator=gen) < 0.3
    words[:, 0] = words[-1] = False  # SOT, and the empty prompt has no words
    control = AttentionControl(maps, words, boost=0.4, device="cpu", kernel=kernel)
    control.sigma = 5.0
    pixels = math.prod(shape)
    dim = block.attn1.to_q.in_features
    hidden = torch.randn(3, pixels, dim, generator=gen)
    ctx = torch.randn(3, CHUNK * (n + 1), block.attn2.to_k.in_features, generator=gen)
    ctx[1:] = ctx[-1:, -CHUNK:].repeat(2, n + 1, 1)
    labels, group_map = maps.labels[shape].flatten(), maps.groups[shape].flatten()

    cross = RoutedCrossAttnProcessor(control)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # flex_attention run eagerly says it is unfused
        cross.project(block.attn2, ctx)
        routed = cross(block.attn2, hidden, ctx)
        blocked = GroupSelfAttnProcessor(control)(block.attn1, hidden)
        expected_cross = reference_cross(block.attn2, hidden, ctx, labels, words,
                                         control.boost_weight())
        expected_self = reference_self(block.attn1, hidden, group_map)
    assert (routed - expected_cross).abs().max() <= 1e-5
    assert (blocked - expected_self).abs().max() <= 1e-5
    assert control.layouts[pixels].blocked == (len(set(group_map.tolist()) - {0}) >= 2)


def test_sorting_makes_every_group_and_region_a_contiguous_run() -> None:
    masks, orders, groups = random_layout(7, 6, (16, 16))
    maps = label_maps(masks, orders, groups, [(16, 16)])
    labels, group_map = maps.labels[(16, 16)].flatten(), maps.groups[(16, 16)].flatten()
    order, inverse = sort_order(labels, group_map)
    for values in (labels[order], group_map[order]):
        changes = (values[1:] != values[:-1]).sum().item()
        assert changes == len(values.unique()) - 1  # each value appears as one run
    assert torch.equal(order[inverse], torch.arange(len(labels)))
    assert torch.equal(group_map[order], group_map[order].sort().values)  # background first
