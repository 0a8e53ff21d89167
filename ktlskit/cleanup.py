"""Undo registered as setup goes, newest first (like ``defer()`` in the kernel's lib/py).

    undo = Defer()
    add_namespace(name)
    undo.defer(delete_namespace, name)
    ...
    undo.run()   # or: with Defer() as undo: ... (runs at the end, also on an exception)

With a ``journal`` file every entry is also written there as it is registered, so another
process can undo what this one set up (``Defer.replay(journal)``): a topology made by one
call is torn down by a later one, or after the process that made it was killed. Journaled
functions must be module-level functions of ktlskit taking JSON-able arguments.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from .errors import KtlskitError


class CleanupError(KtlskitError):
    """Some undo steps failed; the message names each (the others still ran)."""


@dataclass(frozen=True)
class _Entry:
    fn: Callable[..., object]
    args: tuple[Any, ...]

    def describe(self) -> str:
        return f"{self.fn.__qualname__}({', '.join(map(repr, self.args))})"


def _name(fn: Callable[..., object]) -> str:
    if not fn.__module__.startswith("ktlskit.") or "<" in fn.__qualname__:
        raise CleanupError(f"{fn.__qualname__}: a journaled undo must be a module-level "
                           "ktlskit function")
    return f"{fn.__module__}:{fn.__qualname__}"


def _resolve(name: str) -> Callable[..., object]:
    module, _, qualname = name.partition(":")
    if not module.startswith("ktlskit."):
        raise CleanupError(f"journal names a function outside ktlskit: {name!r}")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[no-any-return]


class Defer:
    def __init__(self, journal: Path | None = None) -> None:
        self._entries: list[_Entry] = []
        self._unreadable: list[str] = []  # journal lines replay() could not read
        self.journal = journal

    def defer(self, fn: Callable[..., object], *args: Any) -> None:
        """Register ``fn(*args)`` to run at cleanup (before everything registered earlier)."""
        if self.journal is not None:
            line = json.dumps({"fn": _name(fn), "args": list(args)})
            with self.journal.open("a") as f:
                f.write(line + "\n")
        self._entries.append(_Entry(fn, args))

    def __len__(self) -> int:
        return len(self._entries) + len(self._unreadable)

    def run(self) -> None:
        """Run every entry, newest first; one failing does not stop the others."""
        errors, self._unreadable = self._unreadable, []
        while self._entries:
            entry = self._entries.pop()
            try:
                entry.fn(*entry.args)
            except Exception as exc:
                errors.append(f"{entry.describe()}: {exc}")
        if self.journal is not None:
            self.journal.unlink(missing_ok=True)
        if errors:
            raise CleanupError("undo failed: " + "; ".join(errors))

    def __enter__(self) -> Defer:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.run()
        except CleanupError:
            if ev is None:
                raise  # an error in the body is the one to report

    @classmethod
    def replay(cls, journal: Path) -> Defer:
        """The entries another process journaled (none if the journal is gone).

        A line that cannot be read (the process was killed while writing it, or the journal
        names a function this ktlskit lacks) is skipped; ``run`` undoes the rest and then
        names it in its CleanupError, so what it stood for is not silently left behind.
        """
        undo = cls(journal)
        try:
            lines = journal.read_text().splitlines()
        except FileNotFoundError:
            return undo
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                undo._entries.append(_Entry(_resolve(entry["fn"]), tuple(entry["args"])))
            except (ValueError, KeyError, TypeError, ImportError, AttributeError,
                    CleanupError) as exc:
                undo._unreadable.append(f"{journal}:{n}: cannot read {line[:120]!r} ({exc}); "
                                        "undo that step by hand")
        return undo
