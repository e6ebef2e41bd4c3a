"""Group-blocked self-attention through torch's flex_attention: one fused kernel per layer that
skips the blocks of pixels that may not read each other, instead of a dense (N, N) mask.

flex_attention is fused only when compiled; run eagerly it materialises the full score matrix.
Outside a compiled model the layer calls a compiled copy (one compile per resolution, cached
by torch); inside one, the plain function, which the model's own compile then fuses.
"""

from __future__ import annotations

import torch
from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention

from promptartisan.engine.attention_rules import may_read_pixel

_compiled_flex_attention = torch.compile(flex_attention, dynamic=False)


def group_block_mask(groups: torch.Tensor) -> BlockMask:
    """The self-attention rule over pixels in sorted order, `groups` (N,) their group labels.
    Sorted, each group is a run of positions, so most blocks are wholly read or wholly skipped
    and only the blocks straddling two runs evaluate the rule per pixel."""

    def mask_mod(batch: torch.Tensor, head: torch.Tensor, query: torch.Tensor,
                 key: torch.Tensor) -> torch.Tensor:
        return may_read_pixel(groups[query], groups[key])

    length = groups.numel()
    return create_block_mask(mask_mod, None, None, length, length, device=groups.device)


def flex_self_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                        block_mask: BlockMask, scale: float) -> torch.Tensor:
    """Attention (batch, heads, N, dim) with `block_mask`, fused on CUDA."""
    fused = query.device.type == "cuda" and not torch.compiler.is_compiling()
    attend = _compiled_flex_attention if fused else flex_attention
    return attend(query, key, value, block_mask=block_mask, scale=scale)
