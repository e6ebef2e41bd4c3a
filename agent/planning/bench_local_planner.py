"""Benchmark of the local planner at full size with random weights, on this machine's CPU:
`python -m promptartisan.agent.planning.bench_local_planner [--tokenizer FOLDER] [--dtype float32]`;
with `--guides`, only the schema guides compared (llguidance, and xgrammar where installed).

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
import copy
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

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


def compare_guides(tokenizer: Any, vocab_size: int, answer: list[int],
                   max_instructions: int) -> None:
    """Setup, schema compile and per-token mask cost of llguidance (the one used) and, when it
    is installed, xgrammar, on the same schema and answer. xgrammar keeps a string's `pattern`
    and drops its `maxLength`, so its grammar is the looser one."""
    import importlib.util

    import torch

    from promptartisan.agent.planning.local_planner import JSON_OPTIONS, decoding_schema, load_guide

    schema = decoding_schema(max_instructions)
    started = time.perf_counter()
    guide_tokenizer, grammar = load_guide(tokenizer, vocab_size, max_instructions)
    setup = time.perf_counter() - started
    import llguidance
    import llguidance.torch

    started = time.perf_counter()
    matcher = llguidance.LLMatcher(guide_tokenizer, llguidance.LLMatcher.grammar_from_json_schema(
        schema, defaults=JSON_OPTIONS))
    compiled = time.perf_counter() - started
    mask = llguidance.torch.allocate_token_bitmask(1, vocab_size)
    logits = torch.zeros(1, vocab_size)
    started = time.perf_counter()
    for token in answer:
        llguidance.torch.fill_next_token_bitmask(matcher, mask, 0)
        bits = np.unpackbits(mask.numpy().view(np.uint8), bitorder="little")[:vocab_size]
        logits.masked_fill_(~torch.from_numpy(bits).bool(), float("-inf"))
        assert matcher.consume_token(token), matcher.get_error()
    per_token = (time.perf_counter() - started) / len(answer)
    print(f"llguidance: tokenizer {setup:.2f} s, schema {compiled * 1000:.0f} ms, "
          f"{per_token * 1000:.2f} ms a token (mask and apply)")
    if importlib.util.find_spec("xgrammar") is None:
        print("xgrammar: not installed")
        return
    import xgrammar

    started = time.perf_counter()
    info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size,
                                                   stop_token_ids=[tokenizer.eos_token_id])
    setup = time.perf_counter() - started
    started = time.perf_counter()
    grammar = xgrammar.GrammarCompiler(info, cache_enabled=False).compile_json_schema(
        json.dumps(schema), any_whitespace=False, separators=(",", ":"))
    compiled = time.perf_counter() - started
    matcher = xgrammar.GrammarMatcher(grammar)
    mask = xgrammar.allocate_token_bitmask(1, vocab_size)
    started = time.perf_counter()
    for token in answer:
        matcher.fill_next_token_bitmask(mask)
        xgrammar.apply_token_bitmask_inplace(logits, mask)
        assert matcher.accept_token(token)
    per_token = (time.perf_counter() - started) / len(answer)
    print(f"xgrammar: tokenizer {setup:.2f} s, schema {compiled * 1000:.0f} ms, "
          f"{per_token * 1000:.2f} ms a token (mask and apply)")


def main(argv: list[str] | None = None) -> int:
    import torch
    from transformers import AutoTokenizer, LogitsProcessorList, Qwen2Config, Qwen2ForCausalLM

    from promptartisan.agent.planning.local_planner import (
        LocalModel,
        LocalPlanner,
        SchemaGuide,
        load_guide,
    )
    from promptartisan.agent.planning.rules_planner import RulesPlanner
    from promptartisan.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokenizer", type=Path, help="the real tokenizer's folder, if here")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--guides", action="store_true",
                        help="only compare the schema guides (llguidance, xgrammar): no model")
    parser.add_argument("--repeat", type=int, default=1, help="decodings timed (the best kept)")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    args = parser.parse_args(argv)

    settings = Settings(device="cpu", dtype=args.dtype)
    torch.manual_seed(0)
    tokenizer = (AutoTokenizer.from_pretrained(args.tokenizer) if args.tokenizer else
                 trained_tokenizer(settings.tiny_dir / "bench-planner-tokenizer", QWEN25_TOKENS))
    answer = tokenizer.encode(json.dumps(ANSWER, separators=(",", ":")),
                              add_special_tokens=False) + [tokenizer.eos_token_id]
    if args.guides:
        compare_guides(tokenizer, QWEN25_15B["vocab_size"], answer, settings.max_regions)
        return 0
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
    length = prompt["input_ids"].shape[1]
    print(f"request: {REQUEST!r}: prompt {length} tokens, answer {len(answer)} tokens")

    prefix = {key: value[:, :-1] for key, value in prompt.items()}
    started = time.perf_counter()
    with torch.inference_mode():
        cache = model(**prefix, use_cache=True).cache
    prefill = time.perf_counter() - started

    guide_seconds: list[float] = []

    def timed(guide: SchemaGuide) -> Any:
        def call(input_ids: Any, scores: Any) -> Any:
            started = time.perf_counter()
            masked = guide(input_ids, scores)
            guide_seconds.append(time.perf_counter() - started)
            return masked
        return call

    def decode(guide: bool) -> float:
        """Seconds for the answer's tokens after the prompt (its last token included)."""
        processors = [timed(SchemaGuide(local))] if guide else []
        started = time.perf_counter()
        with torch.inference_mode():
            output = model.generate(**prompt, cache=copy.deepcopy(cache),
                                    do_sample=False, max_new_tokens=len(answer),
                                    logits_processor=LogitsProcessorList(
                                        [*processors, Forced(answer, length)]),
                                    eos_token_id=tokenizer.eos_token_id,
                                    pad_token_id=tokenizer.pad_token_id)
        seconds = time.perf_counter() - started
        assert output[0, length:].tolist() == answer
        return seconds

    free = min(decode(False) for _ in range(args.repeat))
    held = min(decode(True) for _ in range(args.repeat))
    print(f"prefill: {prefill:.1f} s ({(length - 1) / prefill:.0f} tokens/s)")
    print(f"decoding without the guide: {len(answer) / free:.2f} tokens/s")
    print(f"decoding with the guide: {len(answer) / held:.2f} tokens/s; the guide's own time "
          f"{sum(guide_seconds) / len(guide_seconds) * 1000:.1f} ms a token")
    print(f"seconds per plan (three instructions, guided): {prefill + held:.1f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak resident memory: {peak:.2f} GiB")
    if args.json:
        args.json.write_text(json.dumps({
            "parameters_b": params, "dtype": args.dtype, "prompt_tokens": length,
            "answer_tokens": len(answer), "prefill_s": prefill,
            "tokens_per_second": len(answer) / free,
            "guided_tokens_per_second": len(answer) / held,
            "guide_ms_per_token": sum(guide_seconds) / len(guide_seconds) * 1000,
            "seconds_per_plan": prefill + held, "peak_gib": peak}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
