"""`promptartisan models list|download|tiny`."""

from __future__ import annotations

import argparse
from pathlib import Path

from promptartisan import models
from promptartisan.ui.cli import settings_from_args


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("models", help="list, download or build models")
    actions = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")

    listing = actions.add_parser("list", parents=[common], help="where each model loads from")
    listing.set_defaults(func=_list)

    download = actions.add_parser("download", parents=[common],
                                  help="fetch models into the Hugging Face cache")
    download.add_argument("names", nargs="*", metavar="NAME",
                          help=f"models to fetch (default: the editing set); "
                               f"known: {', '.join(models.MODELS)}")
    download.set_defaults(func=_download)

    tiny = actions.add_parser("tiny", parents=[common],
                              help="write tiny random-weight models for offline tests and demos")
    tiny.add_argument("--out", type=Path, help="folder (default: the tiny_dir setting)")
    tiny.set_defaults(func=_tiny)


def _list(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    print(f"{'model':<20} {'here':<5} {'MB':>9}  source")
    for row in models.cached(settings):
        mark = "yes" if row["present"] else "no"
        print(f"{row['name']:<20} {mark:<5} {row['size_mb']:>9.1f}  {row['source']}")
    print("engine: " + models.engine_setup(settings))
    return 0


def _download(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    names = args.names or [m.name for m in models.MODELS.values() if m.default]
    for name in names:
        models.spec(name)
    for name, path in models.download(names, settings).items():
        print(f"{name}: {path}")
    return 0


def _tiny(args: argparse.Namespace) -> int:
    from promptartisan.tiny import write_tiny_models

    settings = settings_from_args(args)
    out = write_tiny_models(args.out or settings.tiny_dir)
    for folder in sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
        print(folder)
    return 0
