"""Complete Attention Control: the attention processors PromptArtisan installs in the UNet for one
call (design steps 3 and 4), and the per-call state they share.

Batch layout the processors expect, as the pipeline builds it: row 0 is the text branch, whose
context is the prompts' chunks [c_1, …, c_n, c_null] of 77 tokens each; the rows after it (the
image-only and unconditional branches of InstructPix2Pix's guidance) carry only the null chunk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention

from promptartisan.engine.regions import LabelMaps


@dataclass
class Route:
    """The pixels of one label (None: every pixel) and the context chunk they may read."""

    chunk: slice
    pixels: torch.Tensor | None
    words: torch.Tensor | None  # bool (77,): the chunk's word tokens to boost; None: no boost


class AttentionControl:
    """State for one pipeline call, computed once and read by every processor at every step.

    `words`: bool (n + 1, 77), the word tokens of each prompt's chunk (the last chunk is the empty
    prompt's). `boost`: eDiff-I's w. The pipeline sets `sigma` before each UNet call.
    """

    def __init__(self, maps: LabelMaps, words: torch.Tensor, boost: float,
                 device: torch.device | str) -> None:
        num_chunks, length = words.shape
        self.chunk_length = length
        self.boost = boost
        self.sigma = 0.0
        self.routes: dict[int, list[Route]] = {}
        self.self_routes: dict[int, list[SelfRoute] | None] = {}
        for shape in maps.shapes:
            labels = maps.labels[shape].flatten().to(device)
            present = labels.unique().tolist()
            routes = []
            for label in present:
                chunk = label - 1 if label else num_chunks - 1
                pixels = None if len(present) == 1 else (labels == label).nonzero().squeeze(1)
                has_words = label > 0 and bool(words[chunk].any())
                routes.append(Route(slice(chunk * length, (chunk + 1) * length), pixels,
                                    words[chunk].to(device) if has_words else None))
            self.routes[labels.numel()] = routes
            self.self_routes[labels.numel()] = _self_routes(maps.groups[shape].flatten().to(device))

    def processors(self, current: dict[str, object]) -> dict[str, object]:
        """A processor for every attention layer of a UNet, given its `attn_processors`."""
        return {
            name: RoutedCrossAttnProcessor(self) if name.endswith("attn2.processor")
            else GroupSelfAttnProcessor(self) if name.endswith("attn1.processor")
            else processor
            for name, processor in current.items()
        }

    def boost_weight(self) -> float:
        """w · log(1 + σ_t): strong while the layout forms, fading to nothing at the end."""
        return self.boost * math.log1p(self.sigma)


@dataclass
class SelfRoute:
    """Query pixels and the key pixels they may read (None: every pixel)."""

    queries: torch.Tensor
    keys: torch.Tensor | None


def _self_routes(groups: torch.Tensor) -> list[SelfRoute] | None:
    """Self-attention as gathers instead of an (N, N) mask: background pixels read every pixel,
    a group's pixels read the background and their own group. No mask means the fastest
    attention kernel (flash) stays available, and no N² buffer. None when at most one group is
    present, so nothing needs blocking."""
    present = [g for g in groups.unique().tolist() if g > 0]
    if len(present) < 2:
        return None
    background = groups == 0
    routes = [SelfRoute(background.nonzero().squeeze(1), None)] if background.any() else []
    for group in present:
        own = groups == group
        routes.append(SelfRoute(own.nonzero().squeeze(1), (own | background).nonzero().squeeze(1)))
    return routes


def boosted_logits(query: torch.Tensor, key: torch.Tensor, words: torch.Tensor, weight: float,
                   scale: float) -> torch.Tensor:
    """Attention logits with eDiff-I's paint-with-words boost on the word tokens only:
    QKᵀ·scale + weight · max(QKᵀ·scale) on `words`; SOT and EOT/PAD logits are left as they are.
    The max is taken per head over the call's logits and floored at 0, so the boost never lowers
    a word's logit (possible with an all-negative QKᵀ)."""
    logits = (query.float() @ key.float().transpose(-1, -2)) * scale
    peak = logits.amax(dim=(-2, -1), keepdim=True).clamp_min(0)
    return logits + weight * peak * words.to(logits.dtype)


def _heads(attn: Attention, x: torch.Tensor) -> torch.Tensor:
    batch, length, inner = x.shape
    return x.view(batch, length, attn.heads, inner // attn.heads).transpose(1, 2)


def _finish(attn: Attention, out: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """Merge heads, project out; the tail of diffusers' AttnProcessor2_0."""
    batch, heads, length, dim = out.shape
    out = attn.to_out[1](attn.to_out[0](out.transpose(1, 2).reshape(batch, length, heads * dim)))
    if attn.residual_connection:
        out = out + residual
    return out / attn.rescale_output_factor


class RoutedCrossAttnProcessor:
    """attn2: a pixel of region k reads only chunk k (its word tokens boosted), a background pixel
    only the empty prompt, so no instruction reaches it. Each label's pixels are gathered and
    attend to their own 77 tokens, so the cost is that of one prompt for any n.

    The context's keys and values are projected once per call, not at every step: they depend
    only on the prompts, and projecting 77·(n + 1) tokens per step would grow with n."""

    def __init__(self, control: AttentionControl) -> None:
        self.control = control
        self._context: tuple[torch.Tensor, int, tuple[torch.Tensor, ...]] | None = None

    def keys_values(self, attn: Attention, encoder_hidden_states: torch.Tensor
                    ) -> tuple[torch.Tensor, ...]:
        """(text keys, text values, null keys, null values) for this context, projected on its
        first use and reused while the same tensor comes back unchanged."""
        cached = self._context
        if (cached is not None and cached[0] is encoder_hidden_states
                and cached[1] == encoder_hidden_states._version):
            return cached[2]
        text = encoder_hidden_states[:1]
        null = encoder_hidden_states[1:, -self.control.chunk_length:]
        projected = (_heads(attn, attn.to_k(text)), _heads(attn, attn.to_v(text)),
                     _heads(attn, attn.to_k(null)), _heads(attn, attn.to_v(null)))
        # Holding the tensor keeps its memory from being reused by another one.
        self._context = (encoder_hidden_states, encoder_hidden_states._version, projected)
        return projected

    def __call__(self, attn: Attention, hidden_states: torch.Tensor,
                 encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 *args: object, **kwargs: object) -> torch.Tensor:
        control = self.control
        routes = control.routes[hidden_states.shape[1]]
        query = _heads(attn, attn.to_q(hidden_states))
        out = torch.empty_like(query)
        key, value, null_key, null_value = self.keys_values(attn, encoder_hidden_states)

        if hidden_states.shape[0] > 1:  # guidance branches: the empty prompt, as in stock
            out[1:] = F.scaled_dot_product_attention(query[1:], null_key, null_value,
                                                     scale=attn.scale)

        weight = control.boost_weight()
        for route in routes:
            q = query[:1] if route.pixels is None else query[:1].index_select(2, route.pixels)
            k, v = key[:, :, route.chunk], value[:, :, route.chunk]
            if route.words is None or weight == 0:
                o = F.scaled_dot_product_attention(q, k, v, scale=attn.scale)
            else:
                logits = boosted_logits(q, k, route.words, weight, attn.scale)
                o = logits.softmax(dim=-1).to(v.dtype) @ v
            if route.pixels is None:
                out[:1] = o
            else:
                out[:1].index_copy_(2, route.pixels, o)
        return _finish(attn, out, hidden_states)


class GroupSelfAttnProcessor:
    """attn1: a pixel may read every pixel except those in regions of another group than its own;
    background reads and is read by everything. Plain attention where no two groups meet."""

    def __init__(self, control: AttentionControl) -> None:
        self.control = control

    def __call__(self, attn: Attention, hidden_states: torch.Tensor,
                 encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 *args: object, **kwargs: object) -> torch.Tensor:
        routes = self.control.self_routes[hidden_states.shape[1]]
        query = _heads(attn, attn.to_q(hidden_states))
        key = _heads(attn, attn.to_k(hidden_states))
        value = _heads(attn, attn.to_v(hidden_states))
        if routes is None:
            return _finish(attn, F.scaled_dot_product_attention(query, key, value,
                                                                scale=attn.scale), hidden_states)
        out = torch.empty_like(query)
        for route in routes:
            k, v = (key, value) if route.keys is None else (key.index_select(2, route.keys),
                                                            value.index_select(2, route.keys))
            out.index_copy_(2, route.queries, F.scaled_dot_product_attention(
                query.index_select(2, route.queries), k, v, scale=attn.scale))
        return _finish(attn, out, hidden_states)
