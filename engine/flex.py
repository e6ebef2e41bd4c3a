"""Group-blocked self-attention through torch's flex_attention: one fused kernel per layer that
skips the blocks of pixels that may not read each other, instead of a dense (N, N) mask.

flex_attention is fused only when compiled; run eagerly it materialises the full score matrix.
Outside a compiled model the layer calls a compiled copy (one compile per resolution, cached
by torch); inside one, the plain function, which the model's own compile then fuses.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn.attention.flex_attention import BlockMask, flex_attention

from promptartisan.engine.attention_rules import may_read_pixel

_compiled_flex_attention = torch.compile(flex_attention, dynamic=False)

BLOCK_SIZE = 128
"""flex_attention's tile, in tokens, both ways."""

MaskMod = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def block_mask_from_classes(classes: torch.Tensor, allowed: torch.Tensor,
                            mask_mod: MaskMod) -> BlockMask:
    """A block mask for a rule that depends on the tokens' classes only: `classes` (S,) each
    token's class in 0..C-1, `allowed` bool (C, C) whether a class may read another, `mask_mod`
    the same rule per token pair (evaluated only inside the blocks that mix).

    A block of queries × keys is skipped when no class pair in it may read, full when every
    pair may, partial otherwise; found from which classes each block holds, a (blocks, C)
    matrix, never from the (S, S) token mask that `create_block_mask` evaluates eagerly
    (2.56 GB at SD1.5's 1024 px). Blocks of the last, short tile are partial, as there."""
    length = classes.numel()
    num_blocks = -(-length // BLOCK_SIZE)
    present = torch.zeros(num_blocks, allowed.shape[0], device=classes.device)
    present[torch.arange(length, device=classes.device) // BLOCK_SIZE, classes] = 1
    rule = allowed.to(present.dtype)
    some = present @ rule @ present.T > 0
    barred = present @ (1 - rule) @ present.T > 0
    full = some & ~barred
    if length % BLOCK_SIZE:
        full[-1, :] = full[:, -1] = False
    partial = some & ~full

    def packed(blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per query tile, how many key tiles and which (those first, in order)."""
        count = blocks.sum(-1, dtype=torch.int32)
        indices = torch.argsort((~blocks).to(torch.int8), dim=-1, stable=True)
        return count[None, None], indices.to(torch.int32)[None, None]

    return BlockMask.from_kv_blocks(*packed(partial), *packed(full), BLOCK_SIZE=BLOCK_SIZE,
                                    mask_mod=mask_mod, seq_lengths=(length, length))


def group_block_mask(groups: torch.Tensor) -> BlockMask:
    """The self-attention rule over pixels in sorted order, `groups` (N,) their group labels.
    Sorted, each group is a run of positions, so most blocks are wholly read or wholly skipped
    and only the blocks straddling two runs evaluate the rule per pixel."""

    def mask_mod(batch: torch.Tensor, head: torch.Tensor, query: torch.Tensor,
                 key: torch.Tensor) -> torch.Tensor:
        return may_read_pixel(groups[query], groups[key])

    kinds, classes = torch.unique(groups, return_inverse=True)
    return block_mask_from_classes(classes, may_read_pixel(kinds[:, None], kinds[None, :]),
                                   mask_mod)


def flex_self_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                        block_mask: BlockMask, scale: float) -> torch.Tensor:
    """Attention (batch, heads, N, dim) with `block_mask`, fused on CUDA."""
    fused = query.device.type == "cuda" and not torch.compiler.is_compiling()
    attend = _compiled_flex_attention if fused else flex_attention
    return attend(query, key, value, block_mask=block_mask, scale=scale)
