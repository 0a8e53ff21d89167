"""What a check says: a status, a one-line reason, and the findings behind it.

A check produces pass, fail or cannot-run; the waiver file can turn a fail
whose every finding it covers into waived. Anything NIPA would not show as
green (its failures *and* its warnings) is a fail here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from ..kernel.source import KernelSource
from .patchfile import PatchFile


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    WAIVED = "waived"
    CANNOT_RUN = "cannot-run"


@dataclass(frozen=True)
class Outcome:
    """A check's own verdict on one patch (or one series)."""

    status: Status
    reason: str
    findings: tuple[str, ...] = ()  # one line per problem; each can be waived on its own
    log: str = ""  # supporting output for the details (new warnings, tool output)


def passed(reason: str, log: str = "") -> Outcome:
    return Outcome(Status.PASS, reason, (), log)


def failed(reason: str, findings: list[str] | tuple[str, ...], log: str = "") -> Outcome:
    if not findings:
        raise ValueError("a failed outcome needs at least one finding")
    return Outcome(Status.FAIL, reason, tuple(findings), log)


def cannot_run(why: str) -> Outcome:
    return Outcome(Status.CANNOT_RUN, why)


def new_since(before: list[str], after: list[str], key: Callable[[str], str]) -> list[str]:
    """Items of ``after`` beyond the count of their ``key`` in ``before`` (a multiset diff)."""
    budget = Counter(map(key, before))
    out = []
    for item in after:
        k = key(item)
        if budget[k] > 0:
            budget[k] -= 1
        else:
            out.append(item)
    return out


@dataclass(frozen=True)
class SeriesGroup:
    """Patches posted together: one cover letter (optional) and its patches."""

    name: str
    cover: PatchFile | None
    patches: tuple[PatchFile, ...]


@dataclass
class PatchContext:
    """What a check may look at for one patch.

    ``tree`` is the check copy of the kernel tree: at the state before the
    patch during ``Check.before`` and after it during ``Check.run``; None when
    the patch did not apply (tree checks then cannot run).
    """

    patch: PatchFile
    number: int  # 1-based position in the whole run
    group: SeriesGroup
    src: KernelSource
    tree: Path | None
    notes: dict[str, object] = field(default_factory=dict)  # per-check scratch space


class Check:
    """One NIPA-style check run on every patch."""

    name = ""
    needs_tree = False  # True: cannot run when the tree walk failed for this patch

    def prepare(self, src: KernelSource, tree: Path) -> None:
        """Called once with the tree at the series' base, before the first patch."""

    def before(self, ctx: PatchContext) -> None:
        """Called with the tree at the state before the patch (collect a baseline)."""

    def run(self, ctx: PatchContext) -> Outcome:
        raise NotImplementedError
