"""Accepted false positives: ``waivers.toml`` next to the series.

    [[waiver]]
    patch = "netdevsim-tls/0002-*"   # glob on the patch name (path relative to the series)
    check = "checkpatch"             # a check name (see ``ktlskit patches check --list``)
    pattern = "FILE_PATH_CHANGES"    # regular expression searched in each finding
    reason = "drivers/net/netdevsim/* is covered by the NETDEVSIM entry's F: line"

A failed result whose every finding some waiver matches becomes "waived";
the report lists each waiver used, with its reason, and every waiver that
matched nothing (stale, or its check could not run).
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import KtlskitError
from .model import Outcome, Status


class WaiverError(KtlskitError):
    """The waiver file is malformed."""


@dataclass
class Waiver:
    patch: str
    check: str
    pattern: str
    reason: str
    regex: re.Pattern[str] = field(repr=False)
    used: list[str] = field(default_factory=list)  # "patch: finding" it covered

    def matches(self, patch: str, check: str, finding: str) -> bool:
        return (check == self.check and fnmatch.fnmatch(patch, self.patch)
                and self.regex.search(finding) is not None)

    def to_json(self) -> dict[str, object]:
        return {"patch": self.patch, "check": self.check, "pattern": self.pattern,
                "reason": self.reason, "used": list(self.used)}


@dataclass(frozen=True)
class Waived:
    """A check result after the waivers: what is still failing and what was accepted."""

    outcome: Outcome
    status: Status
    remaining: tuple[str, ...]
    accepted: tuple[tuple[str, Waiver], ...]  # (finding, waiver)


def load(path: Path | None, known_checks: set[str]) -> list[Waiver]:
    if path is None or not path.is_file():
        return []
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise WaiverError(f"{path}: not valid TOML: {exc}") from exc
    entries = data.get("waiver", [])
    unknown = set(data) - {"waiver"}
    if unknown or not isinstance(entries, list):
        raise WaiverError(f"{path}: only [[waiver]] tables are allowed (found {sorted(unknown)})")
    return [_one(path, n, e, known_checks) for n, e in enumerate(entries, 1)]


def _one(path: Path, n: int, e: object, known: set[str]) -> Waiver:
    where = f"{path}: waiver {n}"
    if not isinstance(e, dict):
        raise WaiverError(f"{where}: not a table")
    keys = {"patch", "check", "pattern", "reason"}
    missing = sorted(keys - set(e))
    extra = sorted(set(e) - keys)
    if missing or extra:
        raise WaiverError(f"{where}: missing {missing} / unknown {extra}; "
                          f"each waiver has exactly {sorted(keys)}")
    if not all(isinstance(e[k], str) and e[k].strip() for k in keys):
        raise WaiverError(f"{where}: patch, check, pattern and reason must be non-empty strings")
    if e["check"] not in known:
        raise WaiverError(f"{where}: unknown check {e['check']!r}; "
                          f"checks: {', '.join(sorted(known))}")
    try:
        rx = re.compile(e["pattern"])
    except re.error as exc:
        raise WaiverError(f"{where}: pattern {e['pattern']!r} is not a regex: {exc}") from exc
    return Waiver(e["patch"], e["check"], e["pattern"], e["reason"].strip(), rx)


def apply(waivers: list[Waiver], patch: str, check: str, outcome: Outcome) -> Waived:
    if outcome.status is not Status.FAIL:
        return Waived(outcome, outcome.status, outcome.findings, ())
    remaining, accepted = [], []
    for finding in outcome.findings:
        w = next((w for w in waivers if w.matches(patch, check, finding)), None)
        if w is None:
            remaining.append(finding)
        else:
            w.used.append(f"{patch}: {finding}")
            accepted.append((finding, w))
    status = Status.FAIL if remaining else Status.WAIVED
    return Waived(outcome, status, tuple(remaining), tuple(accepted))
