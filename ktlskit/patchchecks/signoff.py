"""Signed-off-by: the author of each patch signs it off (NIPA's verify_signedoff).

A patch file has no committer, so the check is the author's: a
``Signed-off-by:`` whose address or name is the ``From:`` author's, and every
Signed-off-by well formed (``Name <address>``).
"""

from __future__ import annotations

import email.utils

from .model import Check, Outcome, PatchContext, failed, passed


class SignedOffBy(Check):
    name = "signed_off_by"

    def run(self, ctx: PatchContext) -> Outcome:
        p = ctx.patch
        sobs = p.trailers("Signed-off-by")
        findings = []
        for sob in sobs:
            name, addr = email.utils.parseaddr(sob)
            if not name or "@" not in addr or "<" not in sob:
                findings.append(f"malformed Signed-off-by: {sob!r} (want 'Name <address>')")
        if p.author_email is None:
            return failed("no From: header, so no author to match",
                          ["no From: header (not a git format-patch file)"])
        if not sobs:
            return failed("no Signed-off-by at all",
                          [f"author {p.author_name} <{p.author_email}> has no Signed-off-by"])
        if not any(_same_person(sob, p.author_name, p.author_email) for sob in sobs):
            findings.append(f"author Signed-off-by missing: author is {p.author_name} "
                            f"<{p.author_email}>, sign-offs are {'; '.join(sobs)}")
        if findings:
            return failed(findings[0], findings)
        return passed(f"author {p.author_email} signed off ({len(sobs)} Signed-off-by)")


def _same_person(sob: str, name: str | None, addr: str) -> bool:
    sob_name, sob_addr = email.utils.parseaddr(sob)
    if sob_addr.lower() == addr.lower():
        return True
    return bool(name) and sob_name.strip().lower() == (name or "").strip().lower()
