"""The rules of Complete Attention Control, written once as functions of each pixel's labels.
Every attention path (the dense one for CPU and cross-attention, the flex_attention one for
self-attention on CUDA) reads them from here, so the paths can't disagree about who reads what.

Labels: a pixel's region label (0 = background, k = region k, 1-based) and its group label
(0 = background). Tokens: the text row's context is the chunks [c_1, …, c_n, c_null] of
`chunk_length` tokens each.
"""

from __future__ import annotations

import math

import torch


def context_chunk(labels: torch.Tensor, num_chunks: int) -> torch.Tensor:
    """The one chunk a pixel of the text row reads: region k's prompt for its pixels, so each
    instruction reaches only its own area; the empty prompt for the background, so no
    instruction reaches it."""
    return torch.where(labels > 0, labels - 1, num_chunks - 1)


def may_read_token(labels: torch.Tensor, token_chunks: torch.Tensor, num_chunks: int
                   ) -> torch.Tensor:
    """Cross-attention, bool (pixels, tokens): a pixel reads the tokens of its own chunk only."""
    return context_chunk(labels, num_chunks)[:, None] == token_chunks[None, :]


def boosted_tokens(labels: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
    """bool (pixels, tokens): where eDiff-I's paint-with-words boost applies. A region's pixels
    boost their own prompt's word tokens: the start token (the attention sink) and the end token
    with its padding are left alone, so the boost draws attention to the instruction itself.
    Background pixels get no boost: they read the empty prompt, which has no words."""
    num_chunks, length = words.shape
    own = may_read_token(labels, torch.arange(num_chunks * length, device=labels.device)
                         // length, num_chunks)
    return own & words.flatten()[None, :] & (labels > 0)[:, None]


def boost_weight(boost: float, sigma: float) -> float:
    """The boost weight of a step, from eDiff-I's w (`boost`, the strength a call asks for):
    w · log(1 + σ_t): strong while the layout forms (high noise), fading to nothing at the
    end, so the boost places each edit without burning in its details."""
    return boost * math.log1p(sigma)


def members(labels: torch.Tensor, num_labels: int) -> torch.Tensor:
    """bool (labels, pixels): which pixels carry each label."""
    return labels[None, :] == torch.arange(num_labels, device=labels.device)[:, None]


def boost_peak(logits: torch.Tensor, labels: torch.Tensor, members: torch.Tensor
               ) -> torch.Tensor:
    """The boost's scale for each pixel, (…, pixels): the largest logit a region's pixels give
    their own prompt, per head, taken over the whole region (`logits` already hold -inf outside
    each pixel's chunk; `members` from `members`). Floored at 0, so the boost never lowers a
    word's logit (an all-negative QKᵀ would). One value per region keeps the boost a shift of
    the region's logits as a whole."""
    per_pixel = logits.amax(dim=-1)
    per_label = per_pixel[..., None, :].masked_fill(~members, -math.inf).amax(dim=-1)
    return per_label.clamp_min(0)[..., labels]


def may_read_pixel(group_q: torch.Tensor, group_kv: torch.Tensor) -> torch.Tensor:
    """Self-attention: a pixel reads every pixel except those of another group than its own.
    Background reads and is read by everything, so the edits blend into their surroundings;
    regions of different groups don't see each other, so one edit doesn't copy into another
    ("a hat on each person" paints two hats, not one hat twice). Elementwise, so the same rule
    builds a dense mask (broadcast) and serves as a flex_attention mask_mod."""
    return (group_q == 0) | (group_kv == 0) | (group_q == group_kv)


def blocks_self_attention(groups: torch.Tensor) -> bool:
    """Whether `may_read_pixel` blocks anything: only where two groups are present."""
    return int((groups.unique() > 0).sum()) >= 2
