"""The `promptartisan` command: one entry point, a sub-command per job.

Each `cli_*` module adds its sub-commands with `register(subparsers, common)`; `common` is the
parent parser of the flags every command shares (settings, --tiny).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from promptartisan.settings import Settings, SettingsError, load_settings

COMMAND_MODULES = [
    "promptartisan.ui.cli_models",
    "promptartisan.ui.cli_bench",
    "promptartisan.ui.cli_ground",
    "promptartisan.ui.cli_chat",
    "promptartisan.ui.cli_eval",
    "promptartisan.ui.cli_plan",
    "promptartisan.ui.cli_edit",
    "promptartisan.ui.cli_sessions",
]


def common_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("settings (override promptartisan.toml and PROMPTARTISAN_*)")
    group.add_argument("--config", type=Path, help="settings file (default ./promptartisan.toml)")
    group.add_argument("--tiny", action="store_true", default=None,
                       help="use tiny random-weight models: offline, for trying things out")
    group.add_argument("--device", choices=["auto", "cuda", "mps", "cpu"])
    group.add_argument("--dtype", choices=["auto", "float32", "float16", "bfloat16"])
    return common


def settings_from_args(args: argparse.Namespace, **extra: object) -> Settings:
    """Settings from every source, the command line last. `extra` maps setting → flag value."""
    overrides = {"tiny": args.tiny, "device": args.device, "dtype": args.dtype, **extra}
    return load_settings(config=args.config, overrides=overrides)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="promptartisan",
        description="Conversational image editing: many instructions, one diffusion pass.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = common_parser()
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(subparsers, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from promptartisan.models import ModelError
    from promptartisan.tools.images import InvalidImageError

    try:
        return int(args.func(args) or 0)
    except (SettingsError, ModelError, InvalidImageError, ValueError) as exc:
        print(f"promptartisan {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
