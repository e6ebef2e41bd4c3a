"""Complete Attention Control: the attention processors PromptArtisan installs in the UNet for one
call (design steps 3 and 4), and the per-call state they share.

Batch layout the processors expect, as the pipeline builds it: row 0 is the text branch, whose
context is the prompts' chunks [c_1, …, c_n, c_null] of 77 tokens each; the rows after it (the
image-only and unconditional branches of InstructPix2Pix's guidance) carry only the null chunk.

Who reads what is decided in attention_rules.py and laid out per resolution in layout.py. The
processors read only tensors of fixed shapes and no Python state that changes between steps or
mask layouts, so `torch.compile(unet)` traces them without a graph break and compiles once per
call shape; each layer launches the same few kernels whatever the number of regions (one
attention call for self-attention, one masked pass for the text row of cross-attention).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention

from promptartisan.engine import attention_rules as rules
from promptartisan.engine.flex import flex_self_attention, kernel_for
from promptartisan.engine.layout import Layout, build_layout
from promptartisan.engine.regions import LabelMaps


class AttentionControl:
    """State for one pipeline call, computed once and read by every processor at every step.

    `words`: bool (n + 1, 77), the word tokens of each prompt's chunk (the last chunk is the empty
    prompt's). `boost`: eDiff-I's w, the strength a call asks for; the boost weight of a step
    is w · log(1 + σ_t) (`rules.boost_weight`). The pipeline sets `sigma` before each UNet call and
    `set_context` with the UNet's context. `kernel`: how blocked self-attention runs, "flex"
    (flex_attention, the default on CUDA) or "mask" (the default elsewhere: a dense boolean mask
    in compiled code, each group gathered with the pixels it may read in eager code); all
    compute the same attention.
    """

    def __init__(self, maps: LabelMaps, words: torch.Tensor, boost: float,
                 device: torch.device | str, kernel: str | None = None) -> None:
        device = torch.device(device)
        kernel = kernel_for(device, kernel)
        self.num_chunks, self.chunk_length = words.shape
        self.boost = boost
        self.kernel = kernel
        # The step's boost weight, on the device and updated in place, so a compiled UNet reads
        # it as an input rather than specialising on its value at every step.
        self.boost_weight_on_device = torch.zeros((), device=device)
        self._sigma = 0.0
        self._context: tuple[torch.Tensor, int] | None = None
        self.layouts: dict[int, Layout] = {
            math.prod(shape): build_layout(maps.labels[shape].flatten(),
                                           maps.groups[shape].flatten(), words, kernel, device)
            for shape in maps.shapes
        }

    @property
    def sigma(self) -> float:
        """The step's noise level σ_t; setting it sets the boost weight."""
        return self._sigma

    @sigma.setter
    def sigma(self, value: float) -> None:
        self._sigma = value
        self.boost_weight_on_device.fill_(rules.boost_weight(self.boost, value))

    def boost_weight(self) -> float:
        """The step's boost weight, w · log(1 + σ_t)."""
        return rules.boost_weight(self.boost, self._sigma)

    def processors(self, current: dict[str, object]) -> dict[str, object]:
        """A processor for every attention layer of a UNet, given its `attn_processors`. New
        processors have no context yet: the next `set_context` projects it."""
        self._context = None
        return {
            name: RoutedCrossAttnProcessor(self) if name.endswith("attn2.processor")
            else GroupSelfAttnProcessor(self) if name.endswith("attn1.processor")
            else processor
            for name, processor in current.items()
        }

    def set_context(self, model: torch.nn.Module, encoder_hidden_states: torch.Tensor) -> None:
        """Project the context's keys and values for every routed layer of `model`, if this
        tensor wasn't projected already or has changed in place since (a step callback may
        do either). Run outside the UNet, so none of this is traced: the context depends only
        on the prompts, and projecting 77·(n + 1) tokens per step would grow with n."""
        seen = self._context
        if (seen is not None and seen[0] is encoder_hidden_states
                and seen[1] == encoder_hidden_states._version):
            return
        context = encoder_hidden_states
        null = context[1:, -self.chunk_length:]
        if len(null) > 1 and bool((null == null[:1]).all()):
            context = context[:2]  # the guidance rows read one null chunk: projected once
        for module in model.modules():
            processor = getattr(module, "processor", None)
            if isinstance(processor, RoutedCrossAttnProcessor) and processor.control is self:
                processor.project(module, context)
        # Holding the tensor keeps its memory from being reused by another one.
        self._context = (encoder_hidden_states, encoder_hidden_states._version)


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


def routed_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     layout: Layout, boost_weight: torch.Tensor, scale: float) -> torch.Tensor:
    """The text row's cross-attention in one pass over all chunks: each pixel's logits outside
    its own chunk are -inf, and its region's word tokens are raised by eDiff-I's boost,
    boost_weight · peak. The logits are computed in float32 over every chunk: the boost's peak is a
    maximum over a whole region's logits, which a fused kernel wouldn't give back, and the
    context is short (77·(n + 1) tokens), so this costs little next to self-attention."""
    batch, heads = query.shape[:2]
    logits = torch.baddbmm(layout.token_bias, query.float().flatten(0, 1),
                           key.float().flatten(0, 1).transpose(-1, -2), alpha=scale)
    logits = logits.unflatten(0, (batch, heads))
    peak = rules.boost_peak(logits, layout.labels, layout.members)
    logits = torch.addcmul(logits, boost_weight * peak[..., None], layout.boosted)
    return logits.softmax(dim=-1).to(value.dtype) @ value


class RoutedCrossAttnProcessor:
    """attn2: a pixel of region k reads only chunk k (its word tokens boosted), a background pixel
    only the empty prompt, so no instruction reaches it; the guidance rows read the empty prompt,
    as in stock. The context's keys and values come from `project`, called once per call through
    `AttentionControl.set_context`."""

    def __init__(self, control: AttentionControl) -> None:
        self.control = control
        self.projected: tuple[torch.Tensor, ...] | None = None

    def project(self, attn: Attention, encoder_hidden_states: torch.Tensor) -> None:
        """(text keys, text values, null keys, null values) of this layer for the context (its
        first row the text row's, the others' null chunks those the guidance rows read, one
        row for all of them when they are the same); the text keys in float32, as
        `routed_attention` reads them, cast once here."""
        text = encoder_hidden_states[:1]
        null = encoder_hidden_states[1:, -self.control.chunk_length:]
        self.projected = (_heads(attn, attn.to_k(text)).float(), _heads(attn, attn.to_v(text)),
                     _heads(attn, attn.to_k(null)), _heads(attn, attn.to_v(null)))

    def __call__(self, attn: Attention, hidden_states: torch.Tensor,
                 encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 *args: object, **kwargs: object) -> torch.Tensor:
        if self.projected is None:
            raise RuntimeError("no context projected: call AttentionControl.set_context(unet, "
                               "encoder_hidden_states) before the UNet")
        key, value, null_key, null_value = self.projected
        layout = self.control.layouts[hidden_states.shape[1]]
        query = _heads(attn, attn.to_q(hidden_states))
        out = routed_attention(query[:1], key, value, layout,
                               self.control.boost_weight_on_device, attn.scale)
        if hidden_states.shape[0] > 1:  # guidance branches: the empty prompt, as in stock
            rows = hidden_states.shape[0] - 1
            out = torch.cat([out, F.scaled_dot_product_attention(
                query[1:], null_key.expand(rows, -1, -1, -1),
                null_value.expand(rows, -1, -1, -1), scale=attn.scale)])
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
        layout = self.control.layouts[hidden_states.shape[1]]
        if layout.block_mask is not None:
            # Sorted by group, pixels that can't read each other fill whole blocks, which the
            # kernel skips; the permutation is undone before the output projection.
            ordered = hidden_states.index_select(1, layout.order)
            out = flex_self_attention(_heads(attn, attn.to_q(ordered)),
                                      _heads(attn, attn.to_k(ordered)),
                                      _heads(attn, attn.to_v(ordered)),
                                      layout.block_mask, attn.scale)
            return _finish(attn, out.index_select(2, layout.inverse), hidden_states)
        query = _heads(attn, attn.to_q(hidden_states))
        key = _heads(attn, attn.to_k(hidden_states))
        value = _heads(attn, attn.to_v(hidden_states))
        # Compiled code must not see the routes: their number, a Python length, would be
        # guarded on and recompile the UNet for every other count of groups.
        if torch.compiler.is_compiling() or layout.self_routes is None:
            out = F.scaled_dot_product_attention(query, key, value, attn_mask=layout.self_mask,
                                                 scale=attn.scale)
            return _finish(attn, out, hidden_states)
        out = torch.empty_like(query)
        for pixels, reads in layout.self_routes:
            k, v = (key, value) if reads is None else (key.index_select(2, reads),
                                                       value.index_select(2, reads))
            out.index_copy_(2, pixels, F.scaled_dot_product_attention(
                query.index_select(2, pixels), k, v, scale=attn.scale))
        return _finish(attn, out, hidden_states)
