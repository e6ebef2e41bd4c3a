"""The flex block masks are built from which token classes each block holds, never from a
dense (S, S) mask: they must be the very masks `create_block_mask` builds from the rule token
by token (the same blocks skipped, full and partial, the same attention)."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention

from promptartisan.engine import joint_attention_rules as rules
from promptartisan.engine.attention_rules import may_read_pixel
from promptartisan.engine.flex import group_block_mask
from promptartisan.engine.joint_attention import joint_block_mask
from promptartisan.engine.layout import sort_order


def assert_same(built: BlockMask, reference: BlockMask, length: int) -> None:
    assert torch.equal(built.to_dense(), reference.to_dense())
    assert torch.equal(built.kv_num_blocks, reference.kv_num_blocks)
    assert torch.equal(built.full_kv_num_blocks, reference.full_kv_num_blocks)
    query = torch.randn(1, 2, length, 8, generator=torch.Generator().manual_seed(length))
    assert torch.equal(flex_attention(query, query, query, block_mask=built),
                       flex_attention(query, query, query, block_mask=reference))


@pytest.mark.filterwarnings("ignore::UserWarning")  # eager flex_attention's advice to compile
@pytest.mark.parametrize("length", [100, 256, 1000, 4096])
@pytest.mark.parametrize("seed", [0, 1])
def test_the_group_mask_is_create_block_masks(length: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    groups = torch.randint(0, 4, (length,), generator=generator)
    groups[: length // 3] = 0  # a background run, as a picture has
    groups = torch.sort(groups).values

    def mask_mod(b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, k: torch.Tensor
                 ) -> torch.Tensor:
        return may_read_pixel(groups[q], groups[k])

    reference = create_block_mask(mask_mod, None, None, length, length, device="cpu")
    assert_same(group_block_mask(groups), reference, length)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("grid", [10, 16, 23])
def test_the_joint_mask_is_create_block_masks(grid: int) -> None:
    generator = torch.Generator().manual_seed(grid)
    labels = torch.randint(0, 4, (grid * grid,), generator=generator)
    groups = torch.where(labels == 3, 1, labels)  # regions 1 and 3 share a group
    tokens = rules.joint_tokens([7, 12, 5, 1], labels, groups)
    order, _ = sort_order(tokens.labels, tokens.groups, first=tokens.text)
    ordered = rules.JointTokens(tokens.text[order], tokens.labels[order], tokens.groups[order])

    def mask_mod(b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, k: torch.Tensor
                 ) -> torch.Tensor:
        t = ordered
        return rules.may_read(t.text[q], t.labels[q], t.groups[q], t.text[k], t.labels[k],
                              t.groups[k])

    length = len(ordered)
    reference = create_block_mask(mask_mod, None, None, length, length, device="cpu")
    assert_same(joint_block_mask(ordered), reference, length)

