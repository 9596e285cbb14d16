"""The ``lowlight`` command: ``lowlight enhance ...``, ``lowlight evaluate ...``."""

from __future__ import annotations

import argparse
import sys

from lowlight import __version__

__all__ = ["main", "console", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lowlight", description="Low-light image enhancement.")
    parser.add_argument("--version", action="version", version=f"lowlight {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from lowlight.cli import enhance as cli_enhance, evaluate as cli_evaluate
    from lowlight.cli import app as cli_app

    cli_enhance.add_parser(sub)
    cli_evaluate.add_parser(sub)
    cli_app.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    from lowlight.errors import UserError, one_line
    from lowlight.interrupts import sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():  # as the stages: `kill` stops a batch like Ctrl-C, between two writes
            return int(args.handler(args) or 0)
    except UserError as exc:
        print(f"lowlight {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"lowlight {args.command}: stopped by {str(exc) or 'Ctrl-C'}; no output was left half-written "
              "(a rerun finishes the rest)", file=sys.stderr)
        return 130


def console() -> None:
    """The ``lowlight`` program (console script and ``python -m lowlight``): :func:`main`, then exit.

    Before exiting, what is still alive (torch and XGBoost are some million objects) moves to
    the cyclic collector's permanent generation, so the interpreter's last collection does not
    walk it: 0.7 s of every command (benchmarks/startup.py). Only here, never in :func:`main`,
    which a Python caller may run in its own process.
    """
    import gc

    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    gc.freeze()
    raise SystemExit(code)
