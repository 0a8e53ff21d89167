"""Progress lines on stderr, so stdout stays clean for tables and JSON."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def say(msg: str) -> None:
    """One progress line, prefixed so it is easy to tell from results."""
    if not _quiet:
        print(f"ktlskit: {msg}", file=sys.stderr, flush=True)


@contextmanager
def step(what: str) -> Iterator[None]:
    """Announce a long step and how long it took."""
    say(f"{what} ...")
    start = time.monotonic()
    yield
    say(f"{what}: done in {time.monotonic() - start:.1f}s")
