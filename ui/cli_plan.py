"""`promptartisan plan [--planner auto|rules|llm:ID] [--context TEXT]… TEXT` or `… --jsonl FILE`:
what a planner makes of a request, as Plan JSON; `… --score [--cases FILE]`: how many of the
phrasing corpus's cases it plans correctly; `… --explain TEXT`: the clauses and targets the rules
planner found. No image and no model beyond the planner's."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from promptartisan.ui.cli import settings_from_args

if TYPE_CHECKING:
    from promptartisan.agent.planning.planners import Planner


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "plan", parents=[common], help="show how a request is planned, as JSON",
        description="Plan a chat request (instructions, targets, groups, or a question) and "
                    "print the Plan as JSON. With --jsonl, plan every line "
                    '{"context": [...], "user": "..."} of a file and print one Plan a line.',
    )
    parser.add_argument("text", nargs="?", metavar="TEXT", help="the request to plan")
    parser.add_argument("--planner", metavar="SPEC",
                        help="auto, rules, or llm:ollama:MODEL, llm:openai:MODEL[@URL], "
                             "llm:llamacpp:/path/model.gguf (default: the planner setting; "
                             "the JSON's \"planner\" says which one answered)")
    parser.add_argument("--context", action="append", default=[], metavar="TEXT",
                        help="an earlier message of the chat, oldest first; repeat for more")
    parser.add_argument("--jsonl", type=Path, metavar="FILE",
                        help='plan each line {"context": [...], "user": "..."} of FILE '
                             "('-' reads standard input)")
    parser.add_argument("--explain", action="store_true",
                        help="with TEXT: after the plan, the clauses and targets the rules "
                             "planner found in it")
    parser.add_argument("--score", action="store_true",
                        help="plan every case of the phrasing corpus and print the misses, "
                             "the score per kind, the latency p50/p99 and 'K/N correct'")
    parser.add_argument("--cases", type=Path, metavar="FILE",
                        help="with --score: a corpus of your own in the same JSONL form "
                             "(default: the one shipped, agent/benchmarks/phrasings.jsonl)")
    parser.set_defaults(func=_plan)


def _plan(args: argparse.Namespace) -> int:
    from promptartisan.agent.planning.planners import load_planner, plan_turn

    if args.score:
        return _score(args)
    if args.cases is not None:
        raise ValueError("--cases goes with --score")
    if (args.text is None) == (args.jsonl is None):
        raise ValueError("give either a request TEXT or --jsonl FILE")
    if args.jsonl is not None and args.context:
        raise ValueError("--context goes with TEXT; in --jsonl each line has its own context")
    settings = settings_from_args(args, planner=args.planner)
    planner = load_planner(settings.planner, settings)
    if args.explain and args.text is None:
        raise ValueError("--explain goes with a request TEXT")
    if args.text is not None:
        print(plan_turn(planner, args.text, args.context).model_dump_json(indent=2))
        if args.explain:
            from promptartisan.agent.planning.rules_planner import explain

            print("\n".join(["", "the rules planner's reading:", *explain(args.text,
                                                                           args.context)]))
        return 0
    if str(args.jsonl) == "-":
        _plan_lines(planner, sys.stdin, "-")
    else:
        try:
            with args.jsonl.open(encoding="utf-8") as lines:
                _plan_lines(planner, lines, str(args.jsonl))
        except UnicodeDecodeError as exc:
            raise ValueError(f"{args.jsonl}: not UTF-8 text ({exc.reason})") from exc
    return 0


def _score(args: argparse.Namespace) -> int:
    from promptartisan.agent.planning.auto_planner import AutoPlanner
    from promptartisan.agent.planning.phrasing_score import load_cases, score
    from promptartisan.agent.planning.planners import load_planner

    if args.text is not None or args.jsonl is not None or args.context:
        raise ValueError("--score plans the corpus's cases; give no TEXT, --jsonl or --context")
    cases = load_cases(args.cases)
    if not cases:
        raise ValueError(f"{args.cases}: no cases")
    settings = settings_from_args(args, planner=args.planner)
    planner = load_planner(settings.planner, settings)
    shown = f"auto ({planner.name})" if isinstance(planner, AutoPlanner) else settings.planner
    print(f"planner {shown}: {len(cases)} cases", flush=True)
    for line in score(planner, cases, settings.planner).lines():
        print(line)
    return 0


def _plan_lines(planner: Planner, lines: Iterable[str], name: str) -> None:
    """One Plan JSON a line, in order, flushed as it goes (a slow LLM shows progress)."""
    from promptartisan.agent.planning.planners import plan_turn

    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            case = json.loads(line)
            user, context = case["user"], list(case.get("context") or [])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{name}:{number}: expected "
                             f'{{"context": [...], "user": "..."}} ({exc})') from exc
        print(plan_turn(planner, user, context).model_dump_json(), flush=True)
