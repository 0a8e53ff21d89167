"""Find kernel splats in a guest's console log.

Recognises WARN()s, BUG()s, oopses, KASAN/KFENCE/UBSAN reports, lockdep
reports, sleeping-in-atomic, RCU stalls, hung tasks, kmemleak and panics.
The console may interleave other output; a report runs from its first line
to the kernel's end-of-trace marker, the next report, or a line cap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# "[   12.345678] " and an optional caller id "[    T1] " / "[  C0] "
_PREFIX = re.compile(r"^(?:<\d+>)?(?:\[\s*\d+\.\d+\]\s?)?(?:\[\s*[TC]\d+\]\s?)?")

_STARTS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(rx)) for kind, rx in (
        ("cut-here", r"^-+\[ cut here \]-+$"),
        ("KASAN", r"^BUG: KASAN: "),
        ("KFENCE", r"^BUG: KFENCE: "),
        ("atomic-sleep", r"^BUG: (sleeping function called from invalid context|"
                         r"scheduling while atomic)"),
        ("BUG", r"^(BUG: |kernel BUG at )"),
        # 7.x: "WARNING: file.c:164 at func+0xc/0xf, CPU#1: comm/133";
        # older: "WARNING: CPU: 1 PID: 133 at file.c:164 func+0xc/0xf"
        ("WARNING", r"^WARNING: (CPU: \d+ PID: \d+ at |\S+:\d+ at )"),
        ("lockdep", r"^WARNING: (possible |inconsistent |suspicious |bad unlock|"
                    r"held lock|lock held|nested lock|circular)"),
        ("UBSAN", r"^UBSAN: "),
        ("Oops", r"^(Oops: |Oops\b|general protection fault|stack segment: )"),
        ("RCU stall", r"(rcu: INFO: rcu_\w+ (self-)?detected stall|"
                      r"INFO: rcu_\w+ (self-)?detected stall)"),
        ("hung task", r"^INFO: task \S+ blocked for more than \d+ seconds"),
        ("kmemleak", r"^kmemleak: \d+ new suspected memory leaks"),
        ("panic", r"^Kernel panic - not syncing"),
    )
)
_END = re.compile(r"^(---\[ end (trace|Kernel panic)|={40,}$)")
_MAX_LINES = 80


@dataclass(frozen=True)
class Splat:
    kind: str
    title: str
    report: str
    line: int  # 1-based line of the console where it starts

    def __str__(self) -> str:
        return f"{self.kind}: {self.title}"


def strip_prefix(line: str) -> str:
    return _PREFIX.sub("", line.rstrip("\r\n"), count=1)


def classify(line: str) -> str | None:
    for kind, rx in _STARTS:
        if rx.search(line):
            return kind
    return None


def find_splats(text: str, first_line: int = 1) -> list[Splat]:
    """Every report in ``text``; ``first_line`` numbers its first line."""
    lines = [strip_prefix(raw) for raw in text.splitlines()]
    splats: list[Splat] = []
    i = 0
    while i < len(lines):
        kind = classify(lines[i])
        if kind is None:
            i += 1
            continue
        start = i
        if kind == "cut-here":
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            kind = classify(nxt) or "WARNING"
            if kind == "cut-here":
                kind = "WARNING"
            i += 1
        end = _report_end(lines, i + 1)
        title = lines[i] if i < len(lines) else lines[start]
        splats.append(Splat(kind, title.strip(), "\n".join(lines[start:end]), first_line + start))
        i = end
    return splats


def _report_end(lines: list[str], i: int) -> int:
    """Index just past the report that started before ``i``."""
    stop = min(len(lines), i + _MAX_LINES)
    while i < stop:
        if _END.match(lines[i]):
            return i + 1
        kind = classify(lines[i])
        # A panic or "cut here" ends the previous report; a nested BUG line in a
        # lockdep/KASAN body does not start a new one only if it is the same kind.
        if kind is not None and kind != "atomic-sleep":
            return i
        i += 1
    return stop
