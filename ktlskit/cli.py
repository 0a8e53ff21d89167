"""The ``ktlskit`` command: argument parsing and dispatch to ``commands/``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .errors import KtlskitError
from .progress import say

#: The module under ``commands/`` that registers each command, in ``--help`` order.
COMMANDS = {"run": "runcmd", "rekey": "runcmd", "peer": "runcmd",
            "kernel": "kernelcmds", "patches": "kernelcmds",
            "boot": "guestcmds", "exec": "guestcmds", "retest": "guestcmds",
            "kselftest": "kselftestcmd", "bench": "bench", "lab": "labcmd"}


def parser(command: str | None = None) -> argparse.ArgumentParser:
    """Every command's parser, or with ``command`` (a name of ``COMMANDS``) only the parsers
    of its module: ``ktlskit exec`` does not import the benchmarks (a third of a second of
    every guest command's start)."""
    p = argparse.ArgumentParser(prog="ktlskit", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    names = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in names:
        importlib.import_module(f".commands.{name}", __package__).register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    args = parser(words[0] if words else None).parse_args(words)
    try:
        return int(args.func(args) or 0)
    except KtlskitError as exc:
        say(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
