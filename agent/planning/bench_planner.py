"""How long the rules planner takes on long messages:
`python -m promptartisan.agent.planning.bench_planner`.

Prints the seconds (best of `--repeat`) for each family of message at two sizes; time that
doubles with the size is linear, time that quadruples is quadratic.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

from promptartisan.agent.planning import grammar
from promptartisan.agent.planning.rules_planner import RulesPlanner

KB = 1000


def _random_words(size: int) -> str:
    """Words of the planner's own lexicon, commas and conjunctions, in a fixed random order."""
    vocabulary = sorted(grammar.COLORS | grammar.ADJECTIVES | grammar.MATERIALS | {
        "the", "a", "sky", "dog", "make", "turn", "into", "and", "with", "add", "hat", "car",
        "on", ",", "then", "please", "it", "is", "not", "too", "in", "of", "from", "remove"})
    rng = random.Random(0)
    words: list[str] = []
    length = 0
    while length < size:
        words.append(rng.choice(vocabulary))
        length += len(words[-1]) + 1
    return " ".join(words)[:size]


def _repeat(unit: str) -> Callable[[int], str]:
    return lambda size: (unit * (size // len(unit) + 1))[:size]


FAMILIES: dict[str, Callable[[int], str]] = {
    "red and blue …": _repeat("red and blue "),
    "random lexicon words": _random_words,
    "a comma list": _repeat("red, "),
    "one clause, no separators": _repeat("make the big old red car "),
    "sentences": _repeat("make the sky red. "),
    "fillers": _repeat(", in the image please"),
    "undo objects": lambda size: "undo" + _repeat(" the a one")(size),
    "is not … enough": _repeat("the sky is not "),
    "locations": lambda size: "add " + _repeat("a hat on a ")(size),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,100", help="message sizes in KB (default 50,100)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, best kept")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    args = parser.parse_args(argv)
    sizes = [int(float(s) * KB) for s in args.sizes.split(",")]
    planner = RulesPlanner()
    issue = "red and blue " * 2000
    print(f"{'family':28s}" + "".join(f"{size // KB:>9d} KB" for size in sizes))
    best = _best(planner, issue, args.repeat)
    print(f"{'red and blue × 2000 (26 KB)':28s}{best:10.3f} s")
    seconds = {"red and blue × 2000 (26 KB)": {str(len(issue)): best}}
    for name, make in FAMILIES.items():
        times = [_best(planner, make(size), args.repeat) for size in sizes]
        seconds[name] = {str(size): t for size, t in zip(sizes, times, strict=True)}
        print(f"{name:28s}" + "".join(f"{t:10.3f} s" for t in times))
    if args.json:
        args.json.write_text(json.dumps(seconds, indent=2))
    return 0


def _best(planner: RulesPlanner, text: str, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        planner.plan(text, [])
        best = min(best, time.perf_counter() - start)
    return best


if __name__ == "__main__":
    sys.exit(main())
