"""Watching a kernel log for new splats; shared by every kind of host."""

from __future__ import annotations

import time
from collections.abc import Callable

from .host import HostSplatError
from .splat import Splat, find_splats


class SplatWatch:
    """Remembers how much of the log was read; reports only what is new.

    ``error`` makes the exception (a guest's, or another host's naming that host).
    """

    def __init__(self, read_log: Callable[[], str], settle: float = 1.0,
                 error: Callable[[list[Splat], str], HostSplatError] = HostSplatError) -> None:
        self._read = read_log
        self._settle = settle
        self._seen = 0
        self._error = error

    def skip_existing(self) -> None:
        self._seen = len(self._read().splitlines())

    def new_splats(self) -> list[Splat]:
        lines = self._read().splitlines()
        found = find_splats("\n".join(lines[self._seen:]), first_line=self._seen + 1)
        self._seen = len(lines)
        return found

    def check(self, context: str = "") -> None:
        """Raise the error for new splats, after letting the report finish printing."""
        mark = self._seen
        if not self.new_splats():
            return
        time.sleep(self._settle)
        self._seen = mark
        raise self._error(self.new_splats(), context)
