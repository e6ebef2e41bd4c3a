"""What a flex block mask costs to build, on this machine: seconds and peak memory of the
class-based builder (`flex.block_mask_from_classes`) against torch's `create_block_mask`,
which evaluates the rule over every (query, key) pair, for SD1.5's largest attention
resolution and FLUX.1 Kontext's joint sequence at 512, 1024 and 2048 px. Each build runs in a
process of its own, so its peak RSS is its own.

    python -m promptartisan.engine.bench_block_mask [--sizes 512 1024 2048] [--json FILE]
        [--reference-up-to 16384]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import time
from pathlib import Path
from typing import Any

FAMILIES = {"sd15": 8, "kontext": 16}
"""Pixels per token side at the largest attention resolution: the VAE's 8, Kontext's 2 × 2
patches on top."""

CHUNK_LENGTHS = [12, 9, 14, 1]
"""T5 lengths of three short instructions and the background prompt (Kontext)."""


def _tokens(family: str, size: int) -> Any:
    """Three regions of three groups (two quarters on top, a band below), in sorted order."""
    import torch

    from promptartisan.engine import joint_attention_rules as rules
    from promptartisan.engine.layout import sort_order

    side = size // FAMILIES[family]
    labels = torch.zeros(side, side, dtype=torch.long)
    labels[: side // 2, : side // 2], labels[: side // 2, side // 2:] = 1, 2
    labels[3 * side // 4:] = 3
    labels = labels.flatten()
    groups = labels.clone()
    if family == "sd15":
        order, _ = sort_order(labels, groups)
        return groups[order]
    tokens = rules.joint_tokens(CHUNK_LENGTHS, labels, groups)
    order, _ = sort_order(tokens.labels, tokens.groups, first=tokens.text)
    return rules.JointTokens(tokens.text[order], tokens.labels[order], tokens.groups[order])


def _build(family: str, size: int, builder: str, results: Any) -> None:
    from torch.nn.attention.flex_attention import create_block_mask

    from promptartisan.engine import joint_attention_rules as rules
    from promptartisan.engine.attention_rules import may_read_pixel
    from promptartisan.engine.flex import group_block_mask
    from promptartisan.engine.joint_attention import joint_block_mask

    tokens = _tokens(family, size)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    if builder == "classes":
        mask = group_block_mask(tokens) if family == "sd15" else joint_block_mask(tokens)
    else:
        t = tokens

        def mask_mod(b: Any, h: Any, q: Any, k: Any) -> Any:
            if family == "sd15":
                return may_read_pixel(t[q], t[k])
            return rules.may_read(t.text[q], t.labels[q], t.groups[q], t.text[k], t.labels[k],
                                  t.groups[k])

        length = len(t)
        mask = create_block_mask(mask_mod, None, None, length, length, device="cpu")
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    results.put({"family": family, "size": size, "builder": builder, "tokens": len(tokens),
                 "seconds": round(seconds, 4), "peak_rss_mb": round(peak / 1024, 1),
                 "sparsity_pct": round(mask.sparsity(), 1)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--reference-up-to", type=int, default=16384, metavar="TOKENS",
                        help="run create_block_mask only up to this many tokens (it needs "
                             "about 10 bytes a pair)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    context = multiprocessing.get_context("spawn")
    rows = []
    print(f"{'family':8} {'size':>5} {'tokens':>7} {'builder':>8} {'seconds':>8} "
          f"{'peak MB':>8} {'skipped %':>9}")
    for family in FAMILIES:
        for size in args.sizes:
            tokens = (size // FAMILIES[family]) ** 2 * (1 if family == "sd15" else 2)
            for builder in ("classes", "create_block_mask"):
                if builder != "classes" and tokens > args.reference_up_to:
                    continue
                results = context.Queue()
                worker = context.Process(target=_build, args=(family, size, builder, results))
                worker.start()
                row = results.get()
                worker.join()
                rows.append(row)
                print(f"{family:8} {size:>5} {row['tokens']:>7} {builder[:8]:>8} "
                      f"{row['seconds']:>8.3f} {row['peak_rss_mb']:>8.1f} "
                      f"{row['sparsity_pct']:>9.1f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
