"""`promptartisan plan [--planner rules|llm:ID] [--context TEXT]… TEXT` or `… --jsonl FILE`:
what a planner makes of a request, as Plan JSON. No image and no model beyond the planner's."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from promptartisan.ui.cli import settings_from_args

if TYPE_CHECKING:
    from promptartisan.agent.planners import Planner


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "plan", parents=[common], help="show how a request is planned, as JSON",
        description="Plan a chat request (instructions, targets, groups, or a question) and "
                    "print the Plan as JSON. With --jsonl, plan every line "
                    '{"context": [...], "user": "..."} of a file and print one Plan a line.',
    )
    parser.add_argument("text", nargs="?", metavar="TEXT", help="the request to plan")
    parser.add_argument("--planner", metavar="SPEC",
                        help="rules, or llm:ollama:MODEL, llm:openai:MODEL[@URL], "
                             "llm:llamacpp:/path/model.gguf (default: the planner setting)")
    parser.add_argument("--context", action="append", default=[], metavar="TEXT",
                        help="an earlier message of the chat, oldest first; repeat for more")
    parser.add_argument("--jsonl", type=Path, metavar="FILE",
                        help='plan each line {"context": [...], "user": "..."} of FILE '
                             "('-' reads standard input)")
    parser.set_defaults(func=_plan)


def _plan(args: argparse.Namespace) -> int:
    from promptartisan.agent.planners import load_planner

    if (args.text is None) == (args.jsonl is None):
        raise ValueError("give either a request TEXT or --jsonl FILE")
    if args.jsonl is not None and args.context:
        raise ValueError("--context goes with TEXT; in --jsonl each line has its own context")
    settings = settings_from_args(args, planner=args.planner)
    planner = load_planner(settings.planner, settings)
    if args.text is not None:
        print(planner.plan(args.text, args.context).model_dump_json(indent=2))
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


def _plan_lines(planner: Planner, lines: Iterable[str], name: str) -> None:
    """One Plan JSON a line, in order, flushed as it goes (a slow LLM shows progress)."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            case = json.loads(line)
            user, context = case["user"], list(case.get("context") or [])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{name}:{number}: expected "
                             f'{{"context": [...], "user": "..."}} ({exc})') from exc
        print(planner.plan(user, context).model_dump_json(), flush=True)
