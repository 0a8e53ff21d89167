"""KTAP / TAP parsing (kselftest output) and KTAP writing (our reports).

Handles nested subtests (indented by 2 or 4 spaces, or by "# " in older
kselftest harness output), ``ok``/``not ok`` with ``# SKIP``/``# XFAIL``
directives and counts the top-level results of the innermost suite that
has test lines.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

_RESULT = re.compile(r"^(?P<ok>ok|not ok)\s+(?P<num>\d+)\s*(?:-\s*)?(?P<name>[^#]*?)\s*"
                     r"(?:#\s*(?P<directive>\w+)\b\s*(?P<reason>.*))?$")
_PLAN = re.compile(r"^1\.\.(\d+)")


@dataclass(frozen=True)
class TestResult:
    number: int
    name: str
    status: str  # pass, fail, skip, xfail, error
    reason: str = ""
    depth: int = 0


@dataclass
class KtapReport:
    results: list[TestResult] = field(default_factory=list)
    plans: dict[int, int] = field(default_factory=dict)  # depth -> planned count
    totals_line: str = ""

    def leaf_results(self) -> list[TestResult]:
        """Results at the deepest level that has any (the individual cases)."""
        if not self.results:
            return []
        depth = max(r.depth for r in self.results)
        return [r for r in self.results if r.depth == depth]

    def counts(self) -> Counter[str]:
        return Counter(r.status for r in self.leaf_results())

    @property
    def complete(self) -> bool:
        """As many individual results as the innermost plan announced (True without a plan)."""
        planned = self.plans.get(max(self.plans)) if self.plans else None
        return planned is None or planned == len(self.leaf_results())

    @property
    def ok(self) -> bool:
        c = self.counts()
        return bool(self.results) and c["fail"] == 0 and c["error"] == 0 and self.complete


def _depth(line: str) -> tuple[int, str]:
    depth = 0
    while True:
        if line.startswith("# ") and _RESULT.match(line[2:].lstrip()):
            depth += 1
            line = line[2:]
        elif line.startswith(("  ", "\t")):
            stripped = line.lstrip(" \t")
            depth += (len(line) - len(stripped)) // 2 if line[0] == " " else 1
            line = stripped
        else:
            return depth, line


def parse(text: str) -> KtapReport:
    rep = KtapReport()
    for raw in text.splitlines():
        depth, line = _depth(raw.rstrip())
        m = _RESULT.match(line)
        if m:
            rep.results.append(_result(m, depth))
            continue
        p = _PLAN.match(line)
        if p:
            rep.plans[depth] = int(p[1])
        elif line.startswith("# Totals:") or line.startswith("# FAILED:") or \
                line.startswith("# PASSED:"):
            rep.totals_line = line
    return rep


def _result(m: re.Match[str], depth: int) -> TestResult:
    directive = (m["directive"] or "").upper()
    if directive == "SKIP":
        status = "skip"
    elif directive == "XFAIL":
        status = "xfail"
    elif m["ok"] == "ok":
        status = "pass"
    else:
        status = "fail"
    return TestResult(int(m["num"]), m["name"].strip(), status, (m["reason"] or "").strip(),
                      depth)


def write(suite: str, results: list[TestResult]) -> str:
    """A KTAP v1 document for ``results``."""
    lines = ["KTAP version 1", f"# {suite}", f"1..{len(results)}"]
    for n, r in enumerate(results, 1):
        word = "not ok" if r.status in ("fail", "error") else "ok"
        directive = {"skip": " # SKIP", "xfail": " # XFAIL"}.get(r.status, "")
        reason = f" {r.reason}" if r.reason and directive else ""
        lines.append(f"{word} {n} {r.name}{directive}{reason}")
    return "\n".join(lines) + "\n"
