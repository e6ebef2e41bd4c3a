"""Masked attention through torch's flex_attention: one fused kernel per layer that skips the
blocks of tokens that may not read each other, instead of a dense (S, S) mask.

flex_attention is fused only when compiled; run eagerly it materialises the full score matrix.
Inside a compiled model the layer calls the plain function, which the model's own compile
fuses. Outside one, on CUDA, it calls `FLEX`, a compiled copy with static shapes. A server
meets a new sequence length at nearly every request (Kontext's is the sum of its prompts' own
T5 lengths; a UNet's follows the picture's aspect ratio), and torch compiles once per length,
then, past its recompile limit (8), silently runs the unfused kernel. So every sequence is
padded to a length on a fixed ladder (`padded_length`: at most four lengths per doubling, at
most ⌈1.19×⌉ the tiles), the padding in a class of its own that reads nothing and is read by
nothing, and `FLEX` compiles once per rung and layer shape, allowed as many compiles as the
ladder has rungs up to a million tokens, times `LAYER_SHAPES`. The kernel skips the tiles that
hold padding only (no query reads them, their own queries read nothing), so the padding costs a
copy of q, k and v, not attention.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import BlockMask, flex_attention

from promptartisan.engine.attention_rules import may_read_pixel

BLOCK_SIZE = 128
"""flex_attention's tile, in tokens, both ways."""

RUNGS_PER_DOUBLING = 4
MAX_TOKENS = 2**20
LAYER_SHAPES = 8
"""Distinct (batch, heads, head size, dtype) a model's flex layers may have, bounded: SD1.5's
attention levels have three head sizes, SDXL's two head counts, Kontext one; each with or
without guidance's batch of three."""

CLASS_SLOTS = 32
"""The class table's side: fixed, so a compiled kernel doesn't specialise on the number of
token classes (regions and groups) of a call; larger only for calls with more classes."""


KERNELS = ("flex", "mask")
"""How masked attention runs: "flex" (flex_attention with a block mask; the default on CUDA)
or "mask" (a dense boolean mask; the default elsewhere). Both compute the same attention."""


def kernel_for(device: torch.device | str, kernel: str | None = None) -> str:
    """`kernel`, checked, or the device's default."""
    kernel = kernel or ("flex" if torch.device(device).type == "cuda" else "mask")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, not {kernel!r}")
    return kernel


def padded_length(length: int) -> int:
    """The sequence length flex attention runs at for `length` tokens: whole 128-token tiles,
    rounded up to the next ⌈2^(k/4)⌉ tiles, so at most ⌈1.19 × its tiles⌉ tiles."""
    tiles = max(1, -(-length // BLOCK_SIZE))
    rung = max(0, math.floor(RUNGS_PER_DOUBLING * math.log2(tiles)) - 1)
    while math.ceil(2 ** (rung / RUNGS_PER_DOUBLING)) < tiles:  # the first rung that holds it
        rung += 1
    return BLOCK_SIZE * math.ceil(2 ** (rung / RUNGS_PER_DOUBLING))


def ladder(up_to: int = MAX_TOKENS) -> list[int]:
    """Every padded length up to `up_to` tokens: what one layer shape can compile."""
    return sorted({padded_length(length) for length in range(1, up_to + 1, BLOCK_SIZE)})


class CompiledFlex:
    """flex_attention compiled with static shapes, once per padded length and layer shape,
    run on the `devices` it fuses on (CUDA); counts its compiles (`compiles`), which a
    long-running server should see stop growing. `backend`: torch.compile's."""

    def __init__(self, backend: str | Callable[..., Any] = "inductor",
                 devices: Iterable[str] = ("cuda",)) -> None:
        self.devices = set(devices)
        self.compiles = 0
        self._backend = (torch._dynamo.lookup_backend(backend) if isinstance(backend, str)
                         else backend)
        self._compiled = torch.compile(flex_attention, backend=self._counted, dynamic=False)
        self.recompile_limit = len(ladder()) * LAYER_SHAPES

    def _counted(self, graph: torch.fx.GraphModule, example_inputs: list[torch.Tensor]
                 ) -> Callable[..., Any]:
        self.compiles += 1
        return self._backend(graph, example_inputs)

    def fuses(self, device: torch.device) -> bool:
        return device.type in self.devices and not torch.compiler.is_compiling()

    def __call__(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                 block_mask: BlockMask, scale: float) -> torch.Tensor:
        # torch's limit (8 compiles a function, then the unfused kernel) is for code that meets
        # unbounded shapes; here they are bounded by the ladder, and the limit is raised to it.
        with torch._dynamo.config.patch(recompile_limit=self.recompile_limit,
                                        accumulated_recompile_limit=max(
                                            self.recompile_limit,
                                            torch._dynamo.config.accumulated_recompile_limit)):
            return self._compiled(query, key, value, block_mask=block_mask, scale=scale)


FLEX = CompiledFlex()
"""The process's compiled flex_attention."""


def block_mask_from_classes(classes: torch.Tensor, allowed: torch.Tensor,
                            length: int | None = None) -> BlockMask:
    """A block mask for a rule that depends on the tokens' classes only: `classes` (S,) each
    token's class in 0..C-1, `allowed` bool (C, C) whether a class may read another; over
    `length` ≥ S tokens (default S), the tokens past S padding that reads and is read by
    nothing (their rows of the output are zeros).

    A block of queries × keys is skipped when no class pair in it may read, full when every
    pair may, partial otherwise, where the rule is looked up per token pair in the class table;
    found from which classes each block holds, a (blocks, C) matrix, never from the (S, S) token
    mask that `create_block_mask` evaluates eagerly (2.56 GB at SD1.5's 1024 px). Blocks of the
    last, short tile are partial, as there."""
    count = classes.numel()
    length = count if length is None else length
    if length < count:
        raise ValueError(f"a block mask over {length} tokens can't hold {count}")
    device = classes.device
    num_classes = allowed.shape[0]
    table = torch.zeros(max(CLASS_SLOTS, num_classes + 1), max(CLASS_SLOTS, num_classes + 1),
                        dtype=torch.bool, device=device)
    table[:num_classes, :num_classes] = allowed  # class num_classes: the padding
    padded = torch.cat([classes.long(), torch.full((length - count,), num_classes,
                                                   device=device)])

    def mask_mod(batch: torch.Tensor, head: torch.Tensor, query: torch.Tensor,
                 key: torch.Tensor) -> torch.Tensor:
        return table[padded[query], padded[key]]

    num_blocks = -(-length // BLOCK_SIZE)
    present = torch.zeros(num_blocks, num_classes + 1, device=device)
    present[torch.arange(length, device=device) // BLOCK_SIZE, padded] = 1
    rule = table[:num_classes + 1, :num_classes + 1].to(present.dtype)
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


def group_block_mask(groups: torch.Tensor, length: int | None = None) -> BlockMask:
    """The self-attention rule over pixels in sorted order, `groups` (N,) their group labels,
    over `length` tokens (see `block_mask_from_classes`). Sorted, each group is a run of
    positions, so most blocks are wholly read or wholly skipped and only the blocks straddling
    two runs evaluate the rule per pixel."""
    kinds, classes = torch.unique(groups, return_inverse=True)
    return block_mask_from_classes(classes, may_read_pixel(kinds[:, None], kinds[None, :]),
                                   length)


def flex_self_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                        block_mask: BlockMask, scale: float) -> torch.Tensor:
    """Attention (batch, heads, S, dim) with `block_mask`, fused on CUDA: the tokens padded
    to the block mask's length for the kernel, the output cut back to S."""
    length, padded = query.shape[-2], block_mask.seq_lengths[0]
    if padded != length:
        query, key, value = (F.pad(x, (0, 0, 0, padded - length)) for x in (query, key, value))
    attend = FLEX if FLEX.fuses(query.device) else flex_attention
    out = attend(query, key, value, block_mask=block_mask, scale=scale)
    return out[..., :length, :] if padded != length else out
