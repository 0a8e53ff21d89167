"""Maintainers and lists to CC (NIPA's cc_maintainers and maintainers), via get_maintainer.pl.

For each patch: ``scripts/get_maintainer.pl`` on the patch in the tree after
it. A file with To/Cc headers must address everyone listed (LKML excepted,
as NIPA does); a file without them is what ``ktlskit patches export``
addresses, and the reason names who that will be. Files the patch adds must
be covered by a MAINTAINERS entry other than THE REST, and a patch that edits
MAINTAINERS must not add ``get_maintainer.pl --self-test=sections,patterns``
warnings (the other parts test links over the network).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..shell import CommandError, cmd
from .model import Check, Outcome, PatchContext, cannot_run, failed, new_since, passed

IGNORED = frozenset({"linux-kernel@vger.kernel.org"})
_LINE = re.compile(r"^(?P<who>.*?)\s*\((?P<role>[^()]*)\)\s*$")
_ADDR = re.compile(r"([^\s<\"]+@[^\s>\"]+)")
_SELFTEST_KEY = "maintainers.selftest"


@dataclass(frozen=True)
class Recipient:
    address: str  # as get_maintainer prints it: 'Name <a@b>' or 'list@host'
    email: str
    role: str  # 'maintainer:NETWORKING [TLS]', 'open list:...', 'reviewer:...'

    @property
    def is_list(self) -> bool:
        return "list" in self.role.split(":", 1)[0]


def get_maintainers(tree: Path, args: list[str]) -> list[Recipient]:
    script = tree / "scripts/get_maintainer.pl"
    res = cmd(["perl", script, "--nogit", "--nogit-fallback", *args], cwd=tree, timeout=120)
    out = []
    for line in res.stdout.splitlines():
        m, a = _LINE.match(line.strip()), _ADDR.search(line)
        if m and a:
            out.append(Recipient(m["who"], a[1].lower(), m["role"]))
    return out


def for_patch(tree: Path, patch: Path) -> list[Recipient]:
    return get_maintainers(tree, [str(patch)])


_NO_MATCH = re.compile(r"warning: no file matches\s+[FX]:\s*(?P<pattern>\S+)")


# The self-test's "links" and "scm" parts fetch every W:/Q:/B: URL (wget) and T: tree (git
# ls-remote) of MAINTAINERS: network reachability, not the patch's content. They took most of
# the self-test's 82 s here (sections and patterns: 5.4 s), and offline they report every
# link bad. A patch's own section and patterns are what this check is about.
SELF_TEST = "--self-test=sections,patterns"


def self_test_warnings(tree: Path) -> list[str]:
    res = cmd(["perl", tree / "scripts/get_maintainer.pl", SELF_TEST], cwd=tree,
              timeout=300, check=False)
    return [ln for ln in (res.stdout + res.stderr).splitlines()
            if re.search(r"warn|error", ln, re.I) and not _matches_without_git(tree, ln)]


def _matches_without_git(tree: Path, warning: str) -> bool:
    """A "no file matches" warning that only says the tree has no git: the self-test lists
    files with ``git ls-files``, so without ``.git`` (a Debian source) every ``F:`` pattern
    "matches nothing", a new one included. Such a pattern is checked against the files."""
    m = _NO_MATCH.search(warning)
    if m is None or (tree / ".git").exists():
        return False
    pattern = m["pattern"].rstrip("/")
    return (tree / pattern).exists() or any(tree.glob(pattern))


def _no_line_numbers(line: str) -> str:
    return re.sub(r":\d+:", ":", line)


class Maintainers(Check):
    name = "maintainers"
    needs_tree = True

    def before(self, ctx: PatchContext) -> None:
        assert ctx.tree is not None
        if any(f.path == "MAINTAINERS" for f in ctx.patch.files):
            ctx.notes[_SELFTEST_KEY] = self_test_warnings(ctx.tree)

    def run(self, ctx: PatchContext) -> Outcome:
        assert ctx.tree is not None
        if not (ctx.tree / "scripts/get_maintainer.pl").is_file():
            return cannot_run("the tree has no scripts/get_maintainer.pl")
        try:
            wanted = [r for r in for_patch(ctx.tree, ctx.patch.path) if r.email not in IGNORED]
            problems = self._uncovered(ctx)
        except CommandError as exc:
            return cannot_run(f"get_maintainer.pl failed: {exc}")
        problems += self._self_test(ctx)
        have = ctx.patch.recipients()
        addressed = bool(ctx.patch.headers.get("to") or ctx.patch.headers.get("cc"))
        emails = sorted({r.email for r in wanted})
        if addressed:
            problems += [f"{r.address} ({r.role}) not CCed" for r in wanted
                         if r.email not in have]
        if problems:
            return failed(problems[0], problems)
        if addressed:
            return passed(f"CCs all {len(emails)} maintainers/lists get_maintainer.pl names")
        return passed(f"no To/Cc in the file; export addresses {len(emails)}: "
                      + ", ".join(emails))

    def _uncovered(self, ctx: PatchContext) -> list[str]:
        assert ctx.tree is not None
        out = []
        for f in ctx.patch.files:
            if f.status != "added" or not (ctx.tree / f.path).is_file():
                continue
            roles = get_maintainers(ctx.tree, ["-f", f.path])
            if not any(r.role.split(":", 1)[-1] not in ("THE REST", "open list")
                       and ":" in r.role for r in roles):
                out.append(f"new file {f.path} is not covered by any MAINTAINERS entry")
        return out

    def _self_test(self, ctx: PatchContext) -> list[str]:
        before = ctx.notes.get(_SELFTEST_KEY)
        if not isinstance(before, list):
            return []
        assert ctx.tree is not None
        after = self_test_warnings(ctx.tree)
        return [f"MAINTAINERS: new self-test warning: {w}"
                for w in new_since(before, after, _no_line_numbers)]
