"""CLIP's real tokenizer, built offline from the BPE file that ships inside open_clip_torch."""

from __future__ import annotations

import gzip
from functools import lru_cache
from importlib import resources

from transformers import CLIPTokenizer

BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte → printable-character table."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))


@lru_cache(maxsize=1)
def _vocab_and_merges() -> tuple[dict[str, int], list[str]]:
    data = resources.files("open_clip").joinpath(BPE_FILE).read_bytes()
    lines = gzip.decompress(data).decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]  # the slice open_clip's SimpleTokenizer takes
    base = list(_bytes_to_unicode().values())
    tokens = base + [t + "</w>" for t in base] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(tokens)}, merges


def clip_tokenizer(model_max_length: int = 77) -> CLIPTokenizer:
    """The tokenizer of CLIP ViT-L/14 (and so of Stable Diffusion 1.x and InstructPix2Pix)."""
    vocab, merges = _vocab_and_merges()
    return CLIPTokenizer(
        vocab=dict(vocab),
        merges=[tuple(m.split()) for m in merges],
        model_max_length=model_max_length,
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
