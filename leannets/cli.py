"""``leannets`` command line. Each sub-command lives in ``leannets/commands/<name>.py`` and
defines ``register(subparsers)``, which adds its parser and sets ``func(args) -> int``."""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from . import __version__, commands
from ._log import configure

#: What a user can get wrong: shown as one line and exit code 2. Anything else (a ``KeyError`` or
#: ``TypeError`` from a bug, say) propagates with its traceback.
USER_ERRORS = (ValueError, FileNotFoundError)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser and the sub-command parsers by command word."""
    parser = argparse.ArgumentParser(prog="leannets", description="Build, train and fairly measure efficient CNNs.")
    parser.add_argument("--version", action="version", version=f"leannets {__version__}")
    parser.add_argument("-q", "--quiet", action="count", default=0,
                        help="before the command: warnings and errors only (library messages)")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="before the command: also debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in sorted(m.name for m in pkgutil.iter_modules(commands.__path__)):
        if not mod.startswith("_"):
            importlib.import_module(f"{commands.__name__}.{mod}").register(sub)
    return parser, dict(sub.choices)


def _parse(parser: argparse.ArgumentParser, subparsers: dict[str, argparse.ArgumentParser], argv: list[str]
           ) -> argparse.Namespace:
    """Parse with intermixed options and positionals inside a sub-command.

    ``parse_intermixed_args`` cannot handle the sub-command level itself, so the command
    word is dispatched first and its own parser parses the rest.
    """
    if argv and argv[0] in subparsers:
        args = subparsers[argv[0]].parse_intermixed_args(argv[1:])
        args.command = argv[0]
        return args
    return parser.parse_args(argv)


GLOBAL_FLAGS = {"-q": -1, "--quiet": -1, "-v": 1, "--verbose": 1}


def _verbosity(argv: list[str]) -> tuple[int, list[str]]:
    """``-q`` / ``-v`` before the command word: the logging verbosity and the remaining arguments."""
    level = 0
    while argv and argv[0] in GLOBAL_FLAGS:
        level += GLOBAL_FLAGS[argv.pop(0)]
    return level, argv


def main(argv: list[str] | None = None) -> int:
    parser, subparsers = build_parser()
    level, argv = _verbosity(sys.argv[1:] if argv is None else list(argv))
    configure(level)
    args = _parse(parser, subparsers, argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at interpreter exit
        return rc
    except USER_ERRORS as err:
        print(f"leannets {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `leannets list | head`: the reader left; stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout at exit
        return 0


if __name__ == "__main__":
    sys.exit(main())
