"""`promptartisan sessions list | show ID | export ID [--out FILE.zip] [--force]`: the chat
sessions kept on disk, their version trees, and a zip of everything a session made."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from promptartisan.ui.cli import settings_from_args


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("sessions", help="list, show or export editing sessions")
    actions = parser.add_subparsers(dest="sessions_command", required=True, metavar="ACTION")
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--dir", type=Path, metavar="DIR",
                       help="the sessions folder (default: the session_dir setting)")

    listing = actions.add_parser("list", parents=[common, where], help="every session")
    listing.set_defaults(func=_list)

    show = actions.add_parser("show", parents=[common, where],
                              help="a session's versions, turns and pending question")
    show.add_argument("session_id", metavar="ID")
    show.set_defaults(func=_show)

    export = actions.add_parser("export", parents=[common, where],
                                help="a zip with every version, its masks and provenance")
    export.add_argument("session_id", metavar="ID")
    export.add_argument("--out", type=Path, metavar="FILE.zip",
                        help="where to write the zip (default: ./ID.zip); a new file, "
                             "outside every session folder")
    export.add_argument("--force", action="store_true",
                        help="replace the --out file if it exists (only a regular file)")
    export.set_defaults(func=_export)


def _root(args: argparse.Namespace) -> Path:
    return settings_from_args(args, session_dir=args.dir).session_dir


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def _list(args: argparse.Namespace) -> int:
    from promptartisan.agent.sessions.store import Session

    root = _root(args)
    infos = Session.list(root)
    if not infos:
        print(f"no sessions in {root}")
        return 0
    print(f"{'session':<24} {'created':<19} {'versions':>8} {'current':>7} {'turns':>5}")
    for info in infos:
        if info.in_use:
            print(f"{info.id:<24} {_when(info.created):<19} in use by another program "
                  "(try again when it is done)")
        elif info.damaged:
            print(f"{info.id:<24} {_when(info.created):<19} damaged: {info.damaged}")
        else:
            print(f"{info.id:<24} {_when(info.created):<19} {info.versions:>8} "
                  f"{info.current:>7} {info.turns:>5}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from promptartisan.agent.sessions.store import Session

    session = Session.open(args.session_id, _root(args))
    turns = {turn.id: turn for turn in session.turns()}
    print(f"session {session.id} in {session.folder}")
    print("versions (* = current):")
    for version in session.versions():
        mark = "*" if version.id == session.current else " "
        parent = "-" if version.parent is None else str(version.parent)
        made_by = turns[version.turn_id].text if version.turn_id in turns else "upload"
        regions = "; ".join(f"{r['prompt']} [{r['target']}]"
                            for r in session.regions(version.id))
        seed = "" if version.seed is None else f" seed={version.seed}"
        print(f" {mark} {version.id:>4}  parent {parent:>4}  {made_by or 'upload'}{seed}"
              + (f"\n          regions: {regions}" if regions else ""))
    print("turns:")
    for turn in turns.values():
        print(f"   {turn.id:>4}  {turn.kind:<8} {turn.version_before}->{turn.version_after}  "
              f"{turn.text!r}: {turn.message}")
    pending = session.pending
    if pending is not None:
        choices = f" (choices: {', '.join(pending.choices)})" if pending.choices else ""
        print(f"waiting for an answer to: {pending.question}{choices}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from promptartisan.agent.sessions.store import Session

    session = Session.open(args.session_id, _root(args))
    out = session.export(args.out or Path(f"{session.id}.zip"), force=args.force)
    print(f"exported {len(session.versions())} versions to {out}")
    return 0
