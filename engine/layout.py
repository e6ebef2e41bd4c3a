"""Each attention resolution's layout for one call: the rules of attention_rules.py turned into the
tensors the processors read, built once per call and resolution, outside any traced code.

Everything a processor reads at a step is a tensor of a fixed shape for a given resolution and
number of prompts, whatever the masks: a compiled UNet then compiles once per call shape instead
of once per mask layout, and the processors launch the same few kernels for any n.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn.attention.flex_attention import BlockMask

from promptartisan.engine import attention_rules as rules
from promptartisan.engine.flex import group_block_mask, padded_length


@dataclass
class Layout:
    """One resolution's pixels. `labels`: (N,) region labels; `members`: bool (n + 1, N), the
    pixels of each label. `order`: the pixels sorted by (group, label), so that every group and
    every region is a contiguous run of positions, and `inverse` to undo it: flex_attention then
    skips whole blocks of pixels that can't read each other. `token_bias`: float (N, tokens), 0
    on the context tokens a pixel may read, -inf on the others; `boosted`: float (N, tokens), 1
    on the word tokens the boost raises. `blocked`: whether self-attention blocks anything (two
    groups or more), with the rule as a flex `block_mask` (sorted order) for the "flex" kernel,
    or for the "mask" kernel as a dense bool (N, N) `self_mask` (pixel order), which compiled
    code reads, and as `self_routes`, which eager code reads: for each group, its pixels and the
    pixels they may read (None: all). Gathering each group with what it reads costs about 3 %
    over plain attention on a CPU at 4096 pixels, the dense mask 15–30 %."""

    labels: torch.Tensor
    members: torch.Tensor
    order: torch.Tensor
    inverse: torch.Tensor
    token_bias: torch.Tensor
    boosted: torch.Tensor
    blocked: bool
    self_mask: torch.Tensor | None = None
    self_routes: list[tuple[torch.Tensor, torch.Tensor | None]] | None = None
    block_mask: BlockMask | None = None


def sort_order(labels: torch.Tensor, groups: torch.Tensor,
               first: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions sorted by (group, label), stable, the positions marked in `first` (Kontext's
    text tokens) in front in their own order; and the inverse permutation."""
    key = groups * (int(labels.max()) + 1) + labels
    if first is not None:
        key = torch.where(first, -1, key)
    order = torch.argsort(key, stable=True)
    return order, torch.argsort(order)


def build_layout(labels: torch.Tensor, groups: torch.Tensor, words: torch.Tensor,
                 kernel: str, device: torch.device) -> Layout:
    """The layout of one resolution from its flat label and group maps (N,) and the prompts'
    word tokens (n + 1, length). `kernel`: "flex" (CUDA) or "mask" (anywhere)."""
    labels, groups, words = labels.to(device), groups.to(device), words.to(device)
    num_chunks, length = words.shape
    token_chunks = torch.arange(num_chunks * length, device=device) // length
    order, inverse = sort_order(labels, groups)
    blocked = rules.blocks_self_attention(groups)
    layout = Layout(labels=labels, members=rules.members(labels, num_chunks), order=order,
                    inverse=inverse,
                    token_bias=torch.zeros(len(labels), num_chunks * length, device=device)
                    .masked_fill(~rules.may_read_token(labels, token_chunks, num_chunks),
                                 -math.inf),
                    boosted=rules.boosted_tokens(labels, words).float(), blocked=blocked)
    if blocked and kernel == "flex":
        layout.block_mask = group_block_mask(groups[order], padded_length(len(groups)))
    elif blocked:
        layout.self_mask = rules.may_read_pixel(groups[:, None], groups[None, :])
        layout.self_routes = [_self_route(group, groups, layout.self_mask)
                              for group in groups.unique()]
    return layout


def _self_route(group: torch.Tensor, groups: torch.Tensor, self_mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The pixels of `group` and the pixels the rule lets them read (None: every pixel)."""
    pixels = (groups == group).nonzero().squeeze(1)
    reads = self_mask[pixels[0]]
    return pixels, None if bool(reads.all()) else reads.nonzero().squeeze(1)
