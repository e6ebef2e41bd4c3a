"""The joint-attention processor PromptArtisan installs in a Flux transformer for one call: Flux's
own attention (projections, RMS norms, RoPE, output projections) with the mask of
joint_attention_rules.py. Double-stream blocks join [text | image] inside the layer and
single-stream blocks carry it joined, so one mask over [text | target | reference] serves both.

Kernels: "mask" (anywhere, exact): scaled-dot-product attention with the dense boolean mask;
"flex" (the default on CUDA): flex_attention with a block mask built from the same rule, which
skips the blocks of tokens that may not read each other instead of holding an (S, S) mask. For
it the tokens are put in (group, label) order first (text in front), so each region is a run of
positions and whole blocks can be skipped: at 1024 × 1024 with three regions, 29 % of the
blocks, against none in the grid's own order, where every block row mixes regions
(`python -m promptartisan.engine.bench_joint_mask`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import apply_rotary_emb
from diffusers.models.transformers.transformer_flux import FluxAttnProcessor
from torch.nn.attention.flex_attention import BlockMask

from promptartisan.engine import joint_attention_rules as rules
from promptartisan.engine.flex import block_mask_from_classes, flex_self_attention

KERNELS = ("flex", "mask")


def joint_block_mask(tokens: rules.JointTokens) -> BlockMask:
    """`rules.may_read` as a flex_attention block mask over the joint sequence."""
    text, labels, groups = tokens.text, tokens.labels, tokens.groups

    def mask_mod(batch: torch.Tensor, head: torch.Tensor, query: torch.Tensor,
                 key: torch.Tensor) -> torch.Tensor:
        return rules.may_read(text[query], labels[query], groups[query], text[key],
                              labels[key], groups[key])

    kinds, classes = torch.unique(torch.stack([text.long(), labels.long(), groups.long()], 1),
                                  dim=0, return_inverse=True)
    kind_text, kind_label, kind_group = kinds.T
    allowed = rules.may_read(kind_text[:, None].bool(), kind_label[:, None], kind_group[:, None],
                             kind_text[None, :].bool(), kind_label[None, :], kind_group[None, :])
    return block_mask_from_classes(classes, allowed, mask_mod)


def sorted_order(tokens: rules.JointTokens) -> torch.Tensor:
    """Token positions with the text first, then the image tokens by (group, label), stable."""
    key = tokens.groups * (int(tokens.labels.max()) + 1) + tokens.labels
    return torch.argsort(torch.where(tokens.text, -1, key), stable=True)


class JointAttentionControl:
    """The joint mask of one call, built once from the tokens' labels, and the processors that
    read it. `kernel`: "flex" (default on CUDA) or "mask" (default elsewhere)."""

    def __init__(self, tokens: rules.JointTokens, device: torch.device | str,
                 kernel: str | None = None) -> None:
        device = torch.device(device)
        kernel = kernel or ("flex" if device.type == "cuda" else "mask")
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, not {kernel!r}")
        self.kernel = kernel
        self.tokens = rules.JointTokens(tokens.text.to(device), tokens.labels.to(device),
                                        tokens.groups.to(device))
        self.mask = self.block_mask = self.order = self.inverse = None
        if kernel == "mask":
            self.mask = rules.dense_mask(self.tokens)
        else:
            self.order = sorted_order(self.tokens)
            self.inverse = torch.argsort(self.order)
            t = self.tokens
            self.block_mask = joint_block_mask(rules.JointTokens(
                t.text[self.order], t.labels[self.order], t.groups[self.order]))

    def processors(self, current: dict[str, object]) -> dict[str, object]:
        """A routed processor for every attention layer of a Flux transformer, given its
        `attn_processors`; a layer with another processor (an IP-Adapter's) is refused."""
        foreign = sorted({type(p).__name__ for p in current.values()
                          if not isinstance(p, (FluxAttnProcessor, JointAttnProcessor))})
        if foreign:
            raise ValueError(f"the transformer has attention processors {foreign}; "
                             f"PromptArtisan routes Flux's own (FluxAttnProcessor) only")
        return dict.fromkeys(current, JointAttnProcessor(self))

    def attend(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor
               ) -> torch.Tensor:
        """Masked attention over (batch, heads, S, dim)."""
        if query.shape[-2] != len(self.tokens):
            raise ValueError(f"the joint sequence has {query.shape[-2]} tokens; this call's mask "
                             f"was built for {len(self.tokens)}")
        if self.kernel == "flex":
            out = flex_self_attention(query[:, :, self.order], key[:, :, self.order],
                                      value[:, :, self.order], self.block_mask,
                                      scale=query.shape[-1] ** -0.5)
            return out[:, :, self.inverse]
        return F.scaled_dot_product_attention(query, key, value, attn_mask=self.mask)


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
