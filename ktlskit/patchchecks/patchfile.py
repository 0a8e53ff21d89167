"""One ``git format-patch`` file: mail headers, commit message, trailers and diff.

Parsed once, before any tree work, so a malformed file is an error that
names it. A plain diff without mail headers is accepted (its message checks
then fail with that reason); a file with no diff at all is refused unless it
is a cover letter (``[PATCH 0/N]``).
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import KtlskitError


class PatchFileError(KtlskitError):
    """A patch file cannot be read as a patch."""


_PREFIX = re.compile(r"^\[(?P<tags>[^\]]*)\]\s*(?P<title>.*)$", re.S)
_NUMBERING = re.compile(r"^(\d+)/(\d+)$")
_TRAILER = re.compile(r"^(?P<key>[A-Za-z][A-Za-z0-9-]*):\s*(?P<value>.*)$")
_DIFF_START = re.compile(r"^(?:diff --git |--- (?:a/|/dev/null))", re.M)


@dataclass(frozen=True)
class FileChange:
    """What one patch does to one file."""

    path: str  # the path after the patch (the old one for a deletion)
    status: str  # "added", "deleted" or "modified"
    added: tuple[str, ...]  # the "+" lines, without the "+"
    removed: tuple[str, ...]  # the "-" lines, without the "-"


@dataclass(frozen=True)
class SubjectTags:
    """The bracketed prefix of a subject: ``[PATCH net-next v2 3/5]``."""

    words: tuple[str, ...] = ()
    number: int | None = None
    total: int | None = None

    @property
    def tree(self) -> str | None:
        """``net`` or ``net-next`` (or another ``*-next``/tree word), if the subject names one."""
        for w in self.words:
            if w in ("net", "net-next") or w.endswith("-next"):
                return w
        return None


@dataclass(frozen=True)
class PatchFile:
    path: Path
    name: str  # path relative to the series root
    author_name: str | None
    author_email: str | None
    subject: str  # as in the file, unfolded
    title: str  # the subject without its bracketed prefix
    tags: SubjectTags
    message: str  # the commit message body (no subject, no diffstat)
    diff: str  # from the first diff header to the end (mail signature removed)
    headers: dict[str, list[str]] = field(default_factory=dict)
    files: tuple[FileChange, ...] = ()

    @property
    def is_cover(self) -> bool:
        return self.tags.number == 0 or (not self.diff and self.path.name.startswith("0000-"))

    @property
    def short(self) -> str:
        """A compact label: ``dir/NNNN`` for ``dir/NNNN-some-title.patch``."""
        stem = self.path.name.split("-", 1)[0]
        parent = self.name.rsplit("/", 1)[0] if "/" in self.name else ""
        return f"{parent}/{stem}" if parent else stem

    def trailers(self, key: str) -> list[str]:
        """Values of ``Key: value`` lines of the message (case-insensitive key)."""
        out = []
        for line in self.message.splitlines():
            m = _TRAILER.match(line.strip())
            if m and m["key"].lower() == key.lower():
                out.append(m["value"].strip())
        return out

    def recipients(self) -> set[str]:
        addrs = [a for h in ("to", "cc", "from") for a in self.headers.get(h, [])]
        return {e.lower() for _, e in email.utils.getaddresses(addrs) if e}


def parse(path: Path, name: str | None = None) -> PatchFile:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise PatchFileError(f"{path}: cannot read: {exc}") from exc
    return parse_text(text, path, name or path.name)


def parse_text(text: str, path: Path, name: str) -> PatchFile:
    headers, body = _split_mail(text)
    m = _DIFF_START.search(body)
    message_part, diff = (body[:m.start()], body[m.start():]) if m else (body, "")
    diff = _strip_signature(diff)
    subject = " ".join(headers.get("subject", [""])[0].split())
    tags, title = _subject_tags(subject)
    author_name = author_email = None
    if headers.get("from"):
        author_name, author_email = email.utils.parseaddr(headers["from"][0])
        author_name = author_name or None
        author_email = author_email or None
    pf = PatchFile(path, name, author_name, author_email, subject, title, tags,
                   _commit_message(message_part), diff, headers, tuple(parse_diff(diff)))
    if not diff and not pf.is_cover:
        raise PatchFileError(f"{path}: no diff in it, and it is not a cover letter ([PATCH 0/N])")
    return pf


def _split_mail(text: str) -> tuple[dict[str, list[str]], str]:
    """Headers (lower-case names, decoded) and the body; no headers for a plain diff."""
    lines = text.splitlines(keepends=True)
    if lines and lines[0].startswith("From ") and not lines[0].startswith("From:"):
        lines = lines[1:]  # the mbox separator line of git format-patch
    if not lines or not re.match(r"^[A-Za-z][\w-]*:", lines[0]) or lines[0].startswith("diff"):
        return {}, "".join(lines)
    msg = email.message_from_string("".join(lines), policy=email.policy.default)
    headers: dict[str, list[str]] = {}
    for key, value in msg.items():
        headers.setdefault(key.lower(), []).append(str(value))
    payload = msg.get_payload(decode=True)
    if isinstance(payload, bytes):
        body = payload.decode(msg.get_content_charset() or "utf-8", errors="replace")
    else:
        body = str(msg.get_payload())
    return headers, body


def _subject_tags(subject: str) -> tuple[SubjectTags, str]:
    m = _PREFIX.match(subject)
    if not m:
        return SubjectTags(), subject
    words = tuple(m["tags"].split())
    number = total = None
    for w in words:
        n = _NUMBERING.match(w)
        if n:
            number, total = int(n[1]), int(n[2])
    return SubjectTags(words, number, total), m["title"].strip()


def _commit_message(part: str) -> str:
    """The message up to the ``---`` line that starts the diffstat (kept whole if none)."""
    out = []
    for line in part.splitlines():
        if line.rstrip() == "---":
            break
        out.append(line)
    return "\n".join(out).strip("\n") + "\n"


def _strip_signature(diff: str) -> str:
    """Drop the ``-- `` / git version trailer format-patch appends."""
    idx = diff.rfind("\n-- \n")
    if idx != -1 and diff[idx + 5:].count("\n") <= 2:
        return diff[:idx + 1]
    return diff


def parse_diff(diff: str) -> list[FileChange]:
    """Per-file added/removed lines of a unified diff (``a/``/``b/`` prefixes stripped)."""
    changes: list[FileChange] = []
    old = new = None
    added: list[str] = []
    removed: list[str] = []
    in_hunk = False

    def flush() -> None:
        if new is None and old is None:
            return
        if old is None:
            changes.append(FileChange(str(new), "added", tuple(added), tuple(removed)))
        elif new is None:
            changes.append(FileChange(old, "deleted", tuple(added), tuple(removed)))
        else:
            changes.append(FileChange(new, "modified", tuple(added), tuple(removed)))

    lines = diff.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            flush()
            old = _strip_prefix(line[4:])
            new = _strip_prefix(lines[i + 1][4:])
            added, removed, in_hunk = [], [], False
        elif line.startswith("+++ ") and i > 0 and lines[i - 1].startswith("--- "):
            continue
        elif line.startswith("@@"):
            in_hunk = True
        elif line.startswith("diff --git "):
            in_hunk = False
        elif in_hunk and line.startswith("+"):
            added.append(line[1:])
        elif in_hunk and line.startswith("-"):
            removed.append(line[1:])
    flush()
    return changes


def _strip_prefix(raw: str) -> str | None:
    path = raw.split("\t", 1)[0].strip()
    if path == "/dev/null":
        return None
    return path.split("/", 1)[1] if "/" in path else path
