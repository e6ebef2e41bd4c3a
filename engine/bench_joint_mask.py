"""What the Kontext family's joint mask costs at its working size, on this machine: the dense
mask's size and build time, and how many flex_attention blocks the block mask skips in the
grid's own token order and in (group, label) order.

    python -m promptartisan.engine.bench_joint_mask [--size 1024]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from promptartisan.engine.joint_attention import joint_block_mask
from promptartisan.engine.joint_attention_rules import JointTokens, dense_mask, joint_tokens
from promptartisan.engine.layout import sort_order
from promptartisan.engine.regions import label_maps

# Three regions of three groups: two quarters on top, a band below; T5 lengths of short
# instructions and the empty background prompt.
CHUNK_LENGTHS = [12, 9, 14, 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="square image side, px")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    args = parser.parse_args(argv)
    size = args.size
    masks = torch.zeros(3, size, size, dtype=torch.bool)
    half = size // 2
    masks[0, :half, :half] = masks[1, :half, half:] = True
    masks[2, size * 6 // 10:size * 9 // 10, size // 5:size * 4 // 5] = True
    grid = (size // 16, size // 16)
    maps = label_maps(masks, [0, 0, 0], [1, 2, 3], [grid])
    tokens = joint_tokens(CHUNK_LENGTHS, maps.labels[grid].flatten(),
                          maps.groups[grid].flatten())

    start = time.perf_counter()
    mask = dense_mask(tokens)
    dense_s = time.perf_counter() - start
    print(f"{size}×{size}: {len(tokens)} tokens; dense mask {mask.numel() / 2**20:.1f} MiB, "
          f"built in {dense_s * 1e3:.0f} ms; {100 * mask.float().mean():.1f} % of pairs read")
    results = {"size": size, "tokens": len(tokens), "dense_mib": mask.numel() / 2**20,
               "dense_s": dense_s, "read_pairs": float(mask.float().mean()), "block_masks": {}}
    order, _ = sort_order(tokens.labels, tokens.groups, first=tokens.text)
    for name, chosen in (("grid order", tokens),
                         ("(group, label) order", JointTokens(
                             tokens.text[order], tokens.labels[order], tokens.groups[order]))):
        start = time.perf_counter()
        block_mask = joint_block_mask(chosen)
        built_s = time.perf_counter() - start
        print(f"block mask in {name}: built in {built_s * 1e3:.0f} ms, "
              f"{block_mask.sparsity():.1f} % of blocks skipped")
        results["block_masks"][name] = {"built_s": built_s,
                                        "skipped_percent": block_mask.sparsity()}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
