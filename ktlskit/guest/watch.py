"""Watching a kernel log for new splats; shared by Guest and LocalGuest."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..errors import KtlskitError
from .splat import Splat, find_splats


class GuestError(KtlskitError):
    """The guest failed to boot or died."""


class GuestSplatError(GuestError):
    """The guest kernel printed a splat; ``.splats`` holds the reports."""

    def __init__(self, splats: list[Splat], context: str = "") -> None:
        self.splats = splats
        where = f" {context}" if context else ""
        body = "\n\n".join(s.report for s in splats)
        super().__init__(f"{len(splats)} kernel splat(s){where}: "
                         f"{'; '.join(str(s) for s in splats)}\n{body}")


class SplatWatch:
    """Remembers how much of the log was read; reports only what is new."""

    def __init__(self, read_log: Callable[[], str], settle: float = 1.0) -> None:
        self._read = read_log
        self._settle = settle
        self._seen = 0

    def skip_existing(self) -> None:
        self._seen = len(self._read().splitlines())

    def new_splats(self) -> list[Splat]:
        lines = self._read().splitlines()
        found = find_splats("\n".join(lines[self._seen:]), first_line=self._seen + 1)
        self._seen = len(lines)
        return found

    def check(self, context: str = "") -> None:
        """Raise GuestSplatError for new splats, after letting the report finish printing."""
        mark = self._seen
        if not self.new_splats():
            return
        time.sleep(self._settle)
        self._seen = mark
        raise GuestSplatError(self.new_splats(), context)
