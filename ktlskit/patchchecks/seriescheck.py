"""Checks of a whole series (NIPA's series tests): size, cover letter, numbering, target tree.

netdev takes at most 15 patches at a time; a series of three or more has a
cover letter; ``[PATCH n/m]`` numbering runs 1..m; the subject names the
target tree, ``net`` for fixes (which then carry ``Fixes:``) and ``net-next``
for everything else. Patches without To/Cc headers are not posted as they
are: for them a missing tree name is what ``ktlskit patches export`` adds,
and the reason says which tree it will name.
"""

from __future__ import annotations

from collections.abc import Callable

from .model import Outcome, SeriesGroup, failed, passed

MAX_PATCHES = 15


def designated_tree(group: SeriesGroup) -> str:
    """``net`` when any patch carries a Fixes: tag, else ``net-next``."""
    return "net" if any(p.trailers("Fixes") for p in group.patches) else "net-next"


def series_size(group: SeriesGroup) -> Outcome:
    n = len(group.patches)
    if n > MAX_PATCHES:
        return failed(f"{n} patches", [f"series of {n} patches; netdev takes at most "
                                       f"{MAX_PATCHES} at a time"])
    return passed(f"{n} patch(es), limit {MAX_PATCHES}")


def cover_letter(group: SeriesGroup) -> Outcome:
    n = len(group.patches)
    if group.cover is not None:
        return passed(f"cover letter {group.cover.name}")
    if n < 3:
        return passed(f"{n} patch(es): no cover letter needed")
    return failed("no cover letter", [f"series of {n} patches without a cover letter"])


def numbering(group: SeriesGroup) -> Outcome:
    n = len(group.patches)
    problems = []
    for i, p in enumerate(group.patches, 1):
        t = p.tags
        if t.number is None:
            if n > 1 and p.headers:
                problems.append(f"{p.name}: subject has no {i}/{n} numbering")
            continue
        if (t.number, t.total) != (i, n):
            problems.append(f"{p.name}: numbered {t.number}/{t.total}, is {i} of {n}")
    cov = group.cover
    if cov is not None and cov.tags.total not in (None, n):
        problems.append(f"{cov.name}: cover letter says 0/{cov.tags.total}, series has {n}")
    if problems:
        return failed(problems[0], problems)
    return passed(f"{n} patch(es) in order")


def target_tree(group: SeriesGroup) -> Outcome:
    want = designated_tree(group)
    named = {p.tags.tree for p in group.patches}
    fixes = sum(1 for p in group.patches if p.trailers("Fixes"))
    ready = all(p.headers.get("to") or p.headers.get("cc") for p in group.patches)
    if named == {None}:
        if ready:
            return failed("no target tree in the subjects",
                          [f"subjects name no tree; this series is for {want} "
                           f"({fixes} patch(es) with Fixes:)"])
        return passed(f"subjects name no tree; export designates {want} "
                      f"({fixes} patch(es) with Fixes:)")
    if len(named) > 1:
        return failed("patches name different trees",
                      [f"trees named: {', '.join(sorted(map(str, named)))}"])
    tree = named.pop()
    if tree == "net" and not fixes:
        return failed("net series without Fixes:",
                      ["series targets net but no patch has a Fixes: tag"])
    note = " (Fixes: in net-next: right only for a bug that is not in net)" \
        if tree != "net" and fixes else ""
    return passed(f"targets {tree}{note}")


SERIES_CHECKS: dict[str, Callable[[SeriesGroup], Outcome]] = {
    "series_size": series_size,
    "cover_letter": cover_letter,
    "numbering": numbering,
    "target_tree": target_tree,
}
