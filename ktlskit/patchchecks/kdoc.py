"""kernel-doc on the files a patch touches: new warnings only (NIPA's kdoc).

``scripts/kernel-doc -Wall -none`` runs on the patch's C files before the
patch (the files it modifies or deletes) and after it (the files it adds or
modifies). Warnings are compared without their line numbers, as multisets,
so moving code is not a new warning and a second copy of one is.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..shell import CommandError, cmd
from .model import Check, Outcome, PatchContext, cannot_run, failed, new_since, passed

_WARN = re.compile(r"^(?P<kind>warning|error):\s*(?P<file>[^\s:]+):(?P<line>\d+):?\s*(?P<text>.*)$",
                   re.I)
_KEY = "kdoc.before"


def normalize(line: str) -> str:
    """``Warning: f.c:12 text`` -> ``f.c: text`` (line numbers move with unrelated edits)."""
    m = _WARN.match(line.strip())
    if not m:
        return line.strip()
    return f"{m['file']}: {m['kind'].lower()}: {m['text']}"


def run_kernel_doc(tree: Path, files: list[str]) -> list[str]:
    """The warning lines kernel-doc prints for ``files`` (exact duplicates once)."""
    files = [f for f in files if f.endswith((".c", ".h")) and (tree / f).is_file()]
    if not files:
        return []
    res = cmd([tree / "scripts/kernel-doc", "-Wall", "-none", *files], cwd=tree, timeout=300,
              check=False)
    seen: dict[str, None] = {}
    for line in (res.stderr + res.stdout).splitlines():
        if line.strip():
            seen.setdefault(line.strip(), None)
    return list(seen)


class Kdoc(Check):
    name = "kdoc"
    needs_tree = True

    def before(self, ctx: PatchContext) -> None:
        assert ctx.tree is not None
        old = [f.path for f in ctx.patch.files if f.status != "added"]
        try:
            ctx.notes[_KEY] = run_kernel_doc(ctx.tree, old)
        except CommandError as exc:
            ctx.notes[_KEY] = exc

    def run(self, ctx: PatchContext) -> Outcome:
        assert ctx.tree is not None
        if not (ctx.tree / "scripts/kernel-doc").is_file():
            return cannot_run("the tree has no scripts/kernel-doc")
        before = ctx.notes.get(_KEY, [])
        if isinstance(before, CommandError):
            return cannot_run(f"kernel-doc failed before the patch: {before}")
        assert isinstance(before, list)
        new_files = [f.path for f in ctx.patch.files if f.status != "deleted"]
        try:
            after = run_kernel_doc(ctx.tree, new_files)
        except CommandError as exc:
            return cannot_run(f"kernel-doc failed: {exc}")
        fresh = new_since(before, after, normalize)
        c_files = [f for f in new_files if f.endswith((".c", ".h"))]
        summary = f"warnings before: {len(before)} after: {len(after)}"
        if fresh:
            return failed(f"{summary} (new: {len(fresh)})", fresh, "\n".join(after))
        if not c_files:
            return passed("no C files touched")
        return passed(f"{summary} in {len(c_files)} file(s)")
