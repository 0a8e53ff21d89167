"""``inline`` in .c files, and static functions without ``inline`` in headers.

NIPA's source_inline fails a patch that adds ``inline`` to a .c file (the
compiler decides; netdev wants no new ones) and warns when the count only
moved (NIPA greps, so the word in a comment counts too: such findings are
marked "[in a comment]" for a waiver to name); header_inline flags
``static`` functions in headers that are not ``inline``. Both are failures
here (see model.py).
"""

from __future__ import annotations

import re

from .model import Check, Outcome, PatchContext, failed, passed

_INLINE = re.compile(r"(?:^|\W)inline\W", re.I)
_COMMENT = re.compile(r"^\s*(?:/\*|\*|//)")
_STATIC_NOT_INLINE = re.compile(r"^static (?!(?:__always_)?inline).*\(")


class SourceInline(Check):
    name = "source_inline"

    def run(self, ctx: PatchContext) -> Outcome:
        added, removed = [], 0
        for f in ctx.patch.files:
            if not f.path.endswith(".c"):
                continue
            added += [f"{f.path}: +{line.strip()}" + (" [in a comment]" if _COMMENT.match(line)
                                                      else "")
                      for line in f.added if _INLINE.search(line)]
            removed += sum(1 for line in f.removed if _INLINE.search(line))
        if not added:
            return passed(f"no inline added in .c files (removed {removed})")
        if len(added) > removed:
            why = f"{len(added)} line(s) with inline added in .c files, {removed} removed"
        else:
            why = (f"inline in .c files only moved ({len(added)} added, {removed} removed); "
                   "NIPA reports this as a warning")
        return failed(why, added)


class HeaderInline(Check):
    name = "header_inline"

    def run(self, ctx: PatchContext) -> Outcome:
        found = [f"{f.path}: +{line.strip()}" for f in ctx.patch.files if f.path.endswith(".h")
                 for line in f.added if _STATIC_NOT_INLINE.match(line)]
        if found:
            return failed(f"{len(found)} static function(s) without inline in headers", found)
        return passed("no static functions without inline added to headers")
