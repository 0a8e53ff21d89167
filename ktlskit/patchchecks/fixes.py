"""``Fixes:`` tags (NIPA's verify_fixes): format, and the target when it can be resolved.

The form netdev wants is ``Fixes: <12+ hex digits> ("<subject of that commit>")``
as a trailer (not set apart by blank lines). Whether the hash names a commit
whose subject matches, and that is an ancestor of the base, needs the tree's
git history: a tree without one (a Debian source tarball) says so and the
check reports cannot-run rather than passing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..shell import cmd
from .model import Check, Outcome, PatchContext, cannot_run, failed, passed

_SPLIT = re.compile(r"^(?P<word>commit)?\s*(?P<sha>[0-9a-fA-F]{5,})(?P<space>\s*)(?P<rest>.*)$",
                    re.I)
_QUOTED = re.compile(r'^\("(?P<subject>.+)"\)$')


@dataclass(frozen=True)
class FixesTag:
    line: str
    sha: str
    subject: str  # "" when it could not be read


def parse_tag(value: str) -> tuple[FixesTag | None, list[str]]:
    """The tag and the problems with its form (``value`` is what follows ``Fixes:``)."""
    m = _SPLIT.match(value.strip())
    if not m:
        return None, [f"Fixes: {value}: no commit hash recognised"]
    problems = []
    if m["word"]:
        problems.append(f"Fixes: {value}: leading word {m['word']!r} unexpected")
    if len(m["sha"]) < 12:
        problems.append(f"Fixes: {value}: hash should be at least 12 digits long")
    rest = m["rest"].strip()
    subject = ""
    if not rest:
        problems.append(f"Fixes: {value}: missing subject")
    elif not m["space"]:
        problems.append(f"Fixes: {value}: missing space between the hash and the subject")
    else:
        q = _QUOTED.match(rest)
        if q:
            subject = q["subject"]
        else:
            problems.append(f'Fixes: {value}: subject must be written as ("subject")')
            subject = rest.strip("()\"'\u201c\u201d\u2018\u2019 ")
    return FixesTag(value, m["sha"].lower(), subject), problems


def isolated(message: str, value: str) -> bool:
    """True when the Fixes line stands alone between blank lines (not in the trailer block)."""
    lines = message.splitlines()
    for i, line in enumerate(lines):
        if line.strip().lower().startswith("fixes:") and line.split(":", 1)[1].strip() == value:
            before = i == 0 or not lines[i - 1].strip()
            after = i + 1 >= len(lines) or not lines[i + 1].strip()
            return before and after
    return False


def has_history(tree: Path) -> bool:
    """True when ``tree`` is the top of a git work tree with a HEAD (not nested in another)."""
    res = cmd(["git", "-C", tree, "rev-parse", "--show-toplevel", "--verify", "-q", "HEAD"],
              timeout=30, check=False)
    top = res.stdout.splitlines()[0] if res.stdout else ""
    return res.rc == 0 and Path(top).resolve() == tree.resolve()


def resolve(tree: Path, tag: FixesTag) -> list[str]:
    """Problems found by looking the hash up in ``tree``'s history."""
    res = cmd(["git", "-C", tree, "log", "-1", "--format=%H%n%s", f"{tag.sha}^{{commit}}",
               "--"], timeout=60, check=False)
    if res.rc != 0:
        return [f"Fixes: {tag.line}: target commit {tag.sha} does not exist in {tree}"]
    full, target_subject = ([*res.stdout.splitlines(), "", ""])[:2]
    problems = []
    want = tag.subject.rstrip(". ") if tag.subject.endswith("...") else tag.subject
    if tag.subject and not target_subject.startswith(want):
        problems.append(f"Fixes: {tag.line}: subject does not match the target commit's "
                        f'("{target_subject}")')
    anc = cmd(["git", "-C", tree, "merge-base", "--is-ancestor", full, "HEAD"], timeout=120,
              check=False)
    if anc.rc == 1:
        problems.append(f"Fixes: {tag.line}: target is not an ancestor of the base (HEAD)")
    return problems


class FixesTagCheck(Check):
    name = "fixes_tag"

    def run(self, ctx: PatchContext) -> Outcome:
        values = ctx.patch.trailers("Fixes")
        if not values:
            return passed("no Fixes: tag")
        problems: list[str] = []
        tags = []
        for v in values:
            tag, bad = parse_tag(v)
            problems += bad
            if isolated(ctx.patch.message, v):
                problems.append(f"Fixes: {v}: blank lines around it; keep it with the other tags")
            if tag:
                tags.append(tag)
        history = has_history(ctx.src.path)
        if history:
            for tag in tags:
                problems += resolve(ctx.src.path, tag)
        if problems:
            return failed(problems[0], problems)
        if not history:
            return cannot_run(f"{len(values)} Fixes: tag(s) well formed, but the target "
                              f"subject cannot be resolved here: {ctx.src.path} has no git "
                              "history")
        return passed(f"{len(values)} Fixes: tag(s) well formed, target subject(s) match")
