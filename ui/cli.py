"""The `promptartisan` command: one entry point, a sub-command per job.

Each `cli_*` module adds its sub-commands with `register(subparsers, common)`; `common` is the
parent parser of the flags every command shares (settings, --tiny).
"""

from __future__ import annotations

import argparse
import importlib
import sqlite3
import sys
from pathlib import Path

from promptartisan.settings import Settings, SettingsError, load_settings

EXIT_CODES = """exit status:
  0    done
  1    done in part: some images or cases failed (the report says which)
  2    not done: bad input or settings, a missing model or file, or a failure reading,
       writing or running a model; one line on standard error says what
  130  interrupted"""

COMMAND_MODULES = [
    "promptartisan.ui.cli_models",
    "promptartisan.ui.cli_bench",
    "promptartisan.ui.cli_ground",
    "promptartisan.ui.cli_chat",
    "promptartisan.ui.cli_eval",
    "promptartisan.ui.cli_plan",
    "promptartisan.ui.cli_edit",
    "promptartisan.ui.cli_batch",
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
    group.add_argument("--memory", choices=["auto", "offload", "group-offload", "none"],
                       help="where the engine's weights live (auto: from the free memory)")
    group.add_argument("--quantize", metavar="none|int8|nf4|fp8|FILE.gguf",
                       help="the engine's weights in fewer bits")
    group.add_argument("--lora", action="append", type=_lora, metavar="PATH[:SCALE]",
                       help="a LoRA on the engine (repeat for more; replaces the settings "
                            "file's list)")
    return common


def _lora(text: str) -> dict[str, object]:
    from promptartisan.engine.adapters import parse_lora

    lora = parse_lora(text)
    return {"path": lora.path, "scale": lora.scale}


def settings_from_args(args: argparse.Namespace, **extra: object) -> Settings:
    """Settings from every source, the command line last. `extra` maps setting → flag value."""
    overrides = {"tiny": args.tiny, "device": args.device, "dtype": args.dtype,
                 "memory": args.memory, "quantize": args.quantize, "lora": args.lora, **extra}
    return load_settings(config=args.config, overrides=overrides)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="promptartisan",
        description="Conversational image editing: many instructions, one diffusion pass.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
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
    except (SettingsError, ModelError, InvalidImageError, ValueError, OSError, sqlite3.Error,
            RuntimeError) as exc:
        print(f"promptartisan {_command(args)}: {_describe(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _command(args: argparse.Namespace) -> str:
    """'edit', or with an action: 'sessions export' (each group's dest is COMMAND_command)."""
    action = getattr(args, f"{args.command}_command", None)
    return args.command if action is None else f"{args.command} {action}"


def _describe(exc: BaseException) -> str:
    """What went wrong, for a person: the file and the system's words for an OSError; the
    first line of a RuntimeError (torch's go on for pages); our own messages as they are."""
    if isinstance(exc, OSError) and exc.strerror:
        names = [str(name) for name in (exc.filename, exc.filename2) if name is not None]
        return ": ".join([*names, exc.strerror])
    if isinstance(exc, sqlite3.Error):
        return f"session database: {exc}"
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0] if isinstance(exc, RuntimeError) else text


if __name__ == "__main__":
    sys.exit(main())
