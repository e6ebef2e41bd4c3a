"""The joint-attention processor PromptArtisan installs in a Flux transformer for one call: Flux's
own attention (projections, RMS norms, RoPE, output projections) with the mask of
joint_attention_rules.py. Double-stream blocks join [text | image] inside the layer and
single-stream blocks carry it joined, so one mask over [text | target | reference] serves both.

Kernels: "mask" (anywhere, exact): scaled-dot-product attention with the dense boolean mask;
"flex" (the default on CUDA): flex_attention with a block mask built from the same rule, which
skips the blocks of tokens that may not read each other instead of holding an (S, S) mask. For
it the tokens are put in (group, label) order (text in front), once before the transformer and
back after it, so each region is a run of positions and whole blocks can be skipped: at
1024 × 1024 with three regions, 29 % of the blocks, against none in the grid's own order,
where every block row mixes regions (`python -m promptartisan.engine.bench_joint_mask`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import apply_rotary_emb
from diffusers.models.transformers.transformer_flux import FluxAttnProcessor
from torch.nn.attention.flex_attention import BlockMask

from promptartisan.engine import joint_attention_rules as rules
from promptartisan.engine.flex import (
    block_mask_from_classes,
    flex_self_attention,
    kernel_for,
    padded_length,
)
from promptartisan.engine.layout import sort_order


def joint_block_mask(tokens: rules.JointTokens, length: int | None = None) -> BlockMask:
    """`rules.may_read` as a flex_attention block mask over the joint sequence, over `length`
    tokens (see `flex.block_mask_from_classes`)."""
    kinds, classes = torch.unique(
        torch.stack([tokens.text.long(), tokens.labels.long(), tokens.groups.long()], 1),
        dim=0, return_inverse=True)
    kind_text, kind_label, kind_group = kinds.T
    allowed = rules.may_read(kind_text[:, None].bool(), kind_label[:, None], kind_group[:, None],
                             kind_text[None, :].bool(), kind_label[None, :], kind_group[None, :])
    return block_mask_from_classes(classes, allowed, length)


class JointAttentionControl:
    """The joint mask of one call, built once from the tokens' labels, and the processors that
    read it. `kernel`: "flex" (default on CUDA) or "mask" (default elsewhere).

    For "flex" the block mask is over the tokens in (group, label) order, text first
    (`layout.sort_order`); inside `in_token_order(transformer)` (the pipeline's loop) the
    transformer's image tokens are put in that order once before each forward and back after
    it, so its layers attend in place. A caller running the transformer with the processors
    alone gets the same attention, each layer putting its tokens in order and back."""

    def __init__(self, tokens: rules.JointTokens, device: torch.device | str,
                 kernel: str | None = None) -> None:
        device = torch.device(device)
        self.kernel = kernel_for(device, kernel)
        self.tokens = rules.JointTokens(tokens.text.to(device), tokens.labels.to(device),
                                        tokens.groups.to(device))
        self.mask = self.block_mask = self.order = self.inverse = None
        self.ordered = False  # the tokens arrive in (group, label) order
        if self.kernel == "mask":
            self.mask = rules.dense_mask(self.tokens)
        else:
            t = self.tokens
            self.order, self.inverse = sort_order(t.labels, t.groups, first=t.text)
            self.block_mask = joint_block_mask(
                rules.JointTokens(t.text[self.order], t.labels[self.order],
                                  t.groups[self.order]), padded_length(len(t)))

    def processors(self, current: dict[str, object]) -> dict[str, object]:
        """A routed processor for every attention layer of a Flux transformer, given its
        `attn_processors`; a layer with another processor (an IP-Adapter's) is refused."""
        foreign = sorted({type(p).__name__ for p in current.values()
                          if not isinstance(p, (FluxAttnProcessor, JointAttnProcessor))})
        if foreign:
            raise ValueError(f"the transformer has attention processors {foreign}; "
                             f"PromptArtisan routes Flux's own (FluxAttnProcessor) only")
        return dict.fromkeys(current, JointAttnProcessor(self))

    @contextmanager
    def in_token_order(self, transformer: torch.nn.Module) -> Iterator[None]:
        """While open, each forward of `transformer` (called with `hidden_states` and `img_ids`
        as keywords, as the pipeline calls it) gets its image tokens and their RoPE ids in the
        block mask's order and returns its output in the grid's: the transformer is
        permutation-equivariant given the ids, so this is the same computation with one
        gather before it and one after, instead of gathers and scatters in each of its
        layers (FLUX.1: 57). Nothing to do for the "mask" kernel."""
        if self.order is None:
            yield
            return
        num_text = int(self.tokens.text.sum())
        if not torch.equal(self.order[:num_text], torch.arange(num_text,
                                                               device=self.order.device)):
            raise AssertionError("sort_order must keep the text first, in its order")
        image_order = self.order[num_text:] - num_text
        image_inverse = torch.argsort(image_order)

        def before(module: torch.nn.Module, args: tuple, kwargs: dict[str, Any]
                   ) -> tuple[tuple, dict[str, Any]]:
            self.ordered = True
            return args, {**kwargs, "hidden_states": kwargs["hidden_states"][:, image_order],
                          "img_ids": kwargs["img_ids"][image_order]}

        def after(module: torch.nn.Module, args: tuple, kwargs: dict[str, Any], output: Any
                  ) -> Any:
            self.ordered = False
            sample = output[0][:, image_inverse]
            return (sample, *output[1:]) if isinstance(output, tuple) else \
                type(output)(sample=sample)

        handles = [transformer.register_forward_pre_hook(before, with_kwargs=True),
                   transformer.register_forward_hook(after, with_kwargs=True)]
        try:
            yield
        finally:
            self.ordered = False
            for handle in handles:
                handle.remove()

    def attend(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor
               ) -> torch.Tensor:
        """Masked attention over (batch, heads, S, dim)."""
        if query.shape[-2] != len(self.tokens):
            raise ValueError(f"the joint sequence has {query.shape[-2]} tokens; this call's mask "
                             f"was built for {len(self.tokens)}")
        if self.kernel == "mask":
            return F.scaled_dot_product_attention(query, key, value, attn_mask=self.mask)
        scale = query.shape[-1] ** -0.5
        if self.ordered:
            return flex_self_attention(query, key, value, self.block_mask, scale)
        out = flex_self_attention(query[:, :, self.order], key[:, :, self.order],
                                  value[:, :, self.order], self.block_mask, scale)
        return out[:, :, self.inverse]


class JointAttnProcessor:
    """FluxAttnProcessor's computation with the call's joint mask."""

    def __init__(self, control: JointAttentionControl) -> None:
        self.control = control

    def __call__(self, attn, hidden_states: torch.Tensor,
                 encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None,
                 image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None
                 ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if attention_mask is not None:
            raise ValueError("a routed Flux layer takes its mask from the regions, not from "
                             "joint_attention_kwargs")

        def heads(states: torch.Tensor, project, norm) -> torch.Tensor:
            states = project(states).unflatten(-1, (-1, attn.head_dim))
            return norm(states) if norm is not None else states

        query = heads(hidden_states, attn.to_q, attn.norm_q)
        key = heads(hidden_states, attn.to_k, attn.norm_k)
        value = heads(hidden_states, attn.to_v, None)
        if encoder_hidden_states is not None:  # double-stream block: [text | image]
            query = torch.cat([heads(encoder_hidden_states, attn.add_q_proj,
                                     attn.norm_added_q), query], dim=1)
            key = torch.cat([heads(encoder_hidden_states, attn.add_k_proj,
                                   attn.norm_added_k), key], dim=1)
            value = torch.cat([heads(encoder_hidden_states, attn.add_v_proj, None), value],
                              dim=1)
        if image_rotary_emb is not None:
            query = apply_rotary_emb(query, image_rotary_emb, sequence_dim=1)
            key = apply_rotary_emb(key, image_rotary_emb, sequence_dim=1)

        out = self.control.attend(query.transpose(1, 2), key.transpose(1, 2),
                                  value.transpose(1, 2))
        out = out.transpose(1, 2).flatten(2, 3).to(query.dtype)
        if encoder_hidden_states is None:
            return out
        text, image = out.split_with_sizes(
            [encoder_hidden_states.shape[1], out.shape[1] - encoder_hidden_states.shape[1]],
            dim=1)
        image = attn.to_out[1](attn.to_out[0](image.contiguous()))
        return image, attn.to_add_out(text.contiguous())
