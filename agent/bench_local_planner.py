"""Benchmark of the local planner at full size with random weights, on this machine's CPU:
`python -m promptartisan.agent.bench_local_planner [--tokenizer FOLDER] [--dtype float32]`.

The model is Qwen2.5-1.5B-Instruct's architecture built from its config (random weights: the
cost of a token does not depend on their values). Its tokenizer is the real one when
`--tokenizer` names its folder, else a byte-level BPE of the same vocabulary size trained here on
the Python sources at hand (cached beside the tiny models), so the schema guide masks a
vocabulary of the real size. A random model writes nonsense, so the answer to a
three-instruction request is forced (the guide still checks every token): the figures are what a
trained model pays for that answer. Prints the load figures, tokens per second with and without
the guide, seconds per plan and the peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

REQUEST = "make the sky a sunset, turn the dog into a cheetah and put a hat on the man"
ANSWER = {"action": "edit", "instructions": [
    {"target": "sky", "instruction": "make the sky a sunset", "group": None},
    {"target": "the dog", "instruction": "turn the dog into a cheetah", "group": None},
    {"target": "the man's head", "instruction": "add a hat", "group": None}]}

QWEN25_15B = {
    "vocab_size": 151936, "hidden_size": 1536, "intermediate_size": 8960,
    "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2,
    "max_position_embeddings": 32768, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True, "bos_token_id": 151643, "eos_token_id": 151645,
}
"""Qwen/Qwen2.5-1.5B-Instruct's config.json (the parts that size the computation)."""

QWEN25_TOKENS = 151643
"""Regular tokens in Qwen2.5's tokenizer (the model's 151,936 rows include padding)."""


def trained_tokenizer(folder: Path, vocab_size: int) -> Any:
    """A byte-level BPE with ChatML's tokens and template, `vocab_size` tokens, trained on the
    Python sources of this interpreter (once; kept in `folder`)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from promptartisan.tiny import CHATML_TEMPLATE

    if (folder / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(folder)
    sources = sorted(Path(sys.prefix).rglob("*.py")) + sorted(Path(sys.base_prefix).glob(
        "lib/python3*/**/*.py"))

    def texts() -> Any:
        for path in sources:
            try:
                yield path.read_text(encoding="utf-8", errors="ignore")
            except OSError:
                continue

    started = time.perf_counter()
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts(), trainers.BpeTrainer(
        vocab_size=vocab_size, show_progress=False,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>")
    tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.save_pretrained(folder)
    print(f"tokenizer: {len(tokenizer)} tokens trained on {len(sources)} files in "
          f"{time.perf_counter() - started:.0f} s (kept in {folder})")
    return tokenizer


class Forced:
    """A logits processor that leaves only the next token of `answer` (then the end)."""

    def __init__(self, answer: list[int], prompt_length: int) -> None:
        self.answer, self.prompt_length = answer, prompt_length

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        step = input_ids.shape[1] - self.prompt_length
        forced = scores.new_full(scores.shape, float("-inf"))
        forced[:, self.answer[min(step, len(self.answer) - 1)]] = 0.0
        return forced


def main(argv: list[str] | None = None) -> None:
    import torch
    from transformers import AutoTokenizer, LogitsProcessorList, Qwen2Config, Qwen2ForCausalLM

    from promptartisan.agent.local_planner import LocalModel, LocalPlanner, SchemaGuide, load_guide
    from promptartisan.agent.rules_planner import RulesPlanner
    from promptartisan.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokenizer", type=Path, help="the real tokenizer's folder, if here")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--repeat", type=int, default=2, help="plans timed (after a warm-up)")
    args = parser.parse_args(argv)

    settings = Settings(device="cpu", dtype=args.dtype)
    torch.manual_seed(0)
    tokenizer = (AutoTokenizer.from_pretrained(args.tokenizer) if args.tokenizer else
                 trained_tokenizer(settings.tiny_dir / "bench-planner-tokenizer", QWEN25_TOKENS))
    started = time.perf_counter()
    config = Qwen2Config(**{**QWEN25_15B, "eos_token_id": tokenizer.eos_token_id})
    model = Qwen2ForCausalLM(config).to(getattr(torch, args.dtype)).eval()
    built = time.perf_counter() - started
    started = time.perf_counter()
    guide_tokenizer, grammar = load_guide(tokenizer, config.vocab_size, settings.max_regions)
    guided = time.perf_counter() - started
    params = sum(p.numel() for p in model.parameters()) / 1e9
    print(f"model: {params:.2f} B parameters ({args.dtype}), built in {built:.1f} s; tokenizer "
          f"{len(tokenizer)} tokens; guide (llguidance tokenizer + schema) {guided:.2f} s")

    local = LocalModel(model, tokenizer, guide_tokenizer, grammar, "cpu")
    planner = LocalPlanner(settings, RulesPlanner(), model=local)
    prompt = tokenizer.apply_chat_template(planner.messages(REQUEST, []),
                                           add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True)
    answer = tokenizer.encode(json.dumps(ANSWER, separators=(",", ":")),
                              add_special_tokens=False) + [tokenizer.eos_token_id]
    length = prompt["input_ids"].shape[1]
    print(f"request: {REQUEST!r}: prompt {length} tokens, answer {len(answer)} tokens")

    def run(guide: bool) -> float:
        processors = [SchemaGuide(local)] if guide else []
        started = time.perf_counter()
        with torch.inference_mode():
            output = model.generate(**prompt, do_sample=False, max_new_tokens=len(answer),
                                    logits_processor=LogitsProcessorList(
                                        [*processors, Forced(answer, length)]),
                                    eos_token_id=tokenizer.eos_token_id,
                                    pad_token_id=tokenizer.pad_token_id)
        seconds = time.perf_counter() - started
        assert output[0, length:].tolist() == answer
        return seconds

    def prefill() -> float:
        started = time.perf_counter()
        with torch.inference_mode():
            model(**prompt)
        return time.perf_counter() - started

    prefill()  # warm-up
    first = min(prefill() for _ in range(args.repeat))
    run(True)
    free = min(run(False) for _ in range(args.repeat))
    held = min(run(True) for _ in range(args.repeat))
    tokens = len(answer) - 1  # the first token comes with the prefill
    print(f"prefill: {first:.2f} s ({length / first:.0f} tokens/s)")
    print(f"decoding without the guide: {tokens / (free - first):.2f} tokens/s")
    print(f"decoding with the guide: {tokens / (held - first):.2f} tokens/s "
          f"({(held - free) / len(answer) * 1000:.1f} ms a token for the guide)")
    print(f"seconds per plan (three instructions, guided): {held:.1f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak resident memory: {peak:.2f} GiB")


if __name__ == "__main__":
    main()
