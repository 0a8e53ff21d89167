"""Watching a kernel log for new splats; shared by every kind of host."""

from __future__ import annotations

import time
from collections.abc import Callable

from .host import HostSplatError
from .splat import Splat, find_splats

SplatErrorFactory = Callable[[list[Splat], str], HostSplatError]


class SplatWatch:
    """Remembers how far the log was read (a mark); reports only what is new.

    This class reads the whole log each time and marks it by line count (a guest's console
    file, which only grows); ``KmsgWatch`` marks the kernel log by record number instead.
    ``error`` makes the exception (a guest's, or another host's naming that host).
    """

    def __init__(self, read_log: Callable[[], str], settle: float = 1.0,
                 error: SplatErrorFactory = HostSplatError) -> None:
        self._read_log = read_log
        self._settle = settle
        self._mark = 0
        self._error = error

    def _since(self, mark: int) -> tuple[list[Splat], int]:
        """The splats printed after ``mark``, and the new mark."""
        lines = self._read_log().splitlines()
        return find_splats("\n".join(lines[mark:]), first_line=mark + 1), len(lines)

    def skip_existing(self) -> None:
        self._mark = self._since(self._mark)[1]

    def new_splats(self) -> list[Splat]:
        found, self._mark = self._since(self._mark)
        return found

    def check(self, context: str = "") -> None:
        """Raise the error for new splats, after letting the report finish printing."""
        mark = self._mark
        if not self.new_splats():
            return
        time.sleep(self._settle)
        self._mark = mark
        raise self._error(self.new_splats(), context)
