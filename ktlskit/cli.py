"""The ``ktlskit`` command: argument parsing and dispatch to ``commands/``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .commands import bench, guestcmds, kernelcmds, kselftestcmd, labcmd, runcmd
from .errors import KtlskitError
from .progress import say

MODULES = (runcmd, kernelcmds, guestcmds, kselftestcmd, bench, labcmd)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ktlskit", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for mod in MODULES:
        mod.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
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
