"""``scripts/checkpatch.pl --strict`` on each patch, with NIPA's line length and codespell.

NIPA runs ``--strict --max-line-length=80 --codespell`` and ignores a few
message types; here every ERROR, WARNING and CHECK is a finding (the
project's standard is a clean ``--strict``), and the ones NIPA would ignore
are marked so a waiver can say why it is accepted.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path

from ..shell import CommandError, cmd
from .model import Check, Outcome, PatchContext, cannot_run, failed, passed

NIPA_IGNORED = frozenset({
    "COMMIT_LOG_LONG_LINE", "MACRO_ARG_REUSE", "ALLOC_SIZEOF_STRUCT", "NO_AUTHOR_SIGN_OFF",
    "GIT_COMMIT_ID", "CAMELCASE", "FILE_PATH_CHANGES", "BAD_REPORTED_BY_LINK",
})
ARGS = ("--strict", "--show-types", "--max-line-length=80", "--codespell", "--color=never")
_TOTAL = re.compile(r"total: (\d+) errors?, (\d+) warnings?, (?:(\d+) checks?, )?\d+ lines")
_MSG = re.compile(r"^(?P<level>ERROR|WARNING|CHECK):(?:(?P<type>[A-Z0-9_]+):)?\s*(?P<text>.*)$")
_WHERE = re.compile(r"^#\d+: FILE: (?P<where>\S+)")


@dataclass(frozen=True)
class CheckpatchReport:
    errors: int
    warnings: int
    checks: int
    findings: tuple[str, ...]
    codespell: bool  # False when checkpatch found no codespell dictionary


def parse(output: str) -> CheckpatchReport | None:
    """The totals and one finding per message; None when there is no totals line."""
    m = _TOTAL.search(output)
    if not m:
        return None
    findings = []
    lines = output.splitlines()
    for i, line in enumerate(lines):
        msg = _MSG.match(line)
        if not msg:
            continue
        where = next((w["where"] for w in map(_WHERE.match, lines[i + 1:i + 3]) if w), "")
        kind = f"{msg['level']}:{msg['type']}" if msg["type"] else msg["level"]
        text = f"{kind}: {msg['text']}" + (f" ({where})" if where else "")
        if msg["type"] in NIPA_IGNORED:
            text += " [NIPA ignores this type]"
        findings.append(text)
    codespell = "No codespell typos will be found" not in output
    return CheckpatchReport(int(m[1]), int(m[2]), int(m[3] or 0), tuple(findings), codespell)


def codespell_dictionary() -> Path | None:
    """codespell's dictionary, wherever the distribution put it.

    checkpatch looks in /usr/share/codespell and then asks the first
    ``python3`` on PATH, which may be a venv or pyenv one without codespell.
    """
    cands = ["/usr/share/codespell/dictionary.txt",
             *sorted(glob.glob("/usr/lib/python3*/*-packages/codespell_lib/data/dictionary.txt")),
             *sorted(glob.glob("/usr/local/lib/python3*/*-packages/codespell_lib/data/"
                               "dictionary.txt"))]
    return next((Path(c) for c in cands if Path(c).is_file()), None)


class Checkpatch(Check):
    name = "checkpatch"

    def run(self, ctx: PatchContext) -> Outcome:
        script = ctx.src.path / "scripts/checkpatch.pl"
        if not script.is_file():
            return cannot_run(f"{script} does not exist")
        try:
            spell = codespell_dictionary()
            extra = [f"--codespellfile={spell}"] if spell else []
            res = cmd(["perl", script, *ARGS, *extra, ctx.patch.path], cwd=ctx.src.path,
                      timeout=300, check=False)
        except CommandError as exc:
            return cannot_run(f"checkpatch did not run: {exc}")
        out = res.stdout + res.stderr
        rep = parse(out)
        if rep is None:
            return cannot_run("checkpatch printed no totals line: "
                              + " / ".join(out.strip().splitlines()[-3:]))
        total = f"{rep.errors} errors, {rep.warnings} warnings, {rep.checks} checks"
        note = "" if rep.codespell else " (no codespell dictionary: typos not checked)"
        if rep.findings:
            return failed(total + note, rep.findings, out)
        if not rep.codespell:
            return cannot_run("clean, but no codespell dictionary, so typos were not checked; "
                              "install codespell")
        return passed(total)
