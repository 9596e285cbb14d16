"""The ``lowlight`` command: ``lowlight enhance ...``, ``lowlight evaluate ...``."""

from __future__ import annotations

import argparse
import sys

from . import __version__

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lowlight", description="Low-light image enhancement.")
    parser.add_argument("--version", action="version", version=f"lowlight {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from . import cli_enhance

    cli_enhance.add_parser(sub)
    try:
        from . import cli_evaluate
    except ImportError:  # pragma: no cover - only while the module is being written
        cli_evaluate = None
    if cli_evaluate is not None:
        cli_evaluate.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    from .errors import DataError, user_errors
    from .inference import EnhanceError

    try:
        return int(args.handler(args) or 0)
    except (*user_errors(), EnhanceError) as exc:
        # a single problem is one line: the problem names the file and says what is wrong
        msg = exc.problems[0] if isinstance(exc, DataError) and len(exc.problems) == 1 else str(exc)
        print(f"lowlight {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
