"""Find the Debian mirror this machine already uses, from its apt sources.

ktlskit never names a mirror itself: it reuses the URI (and keyring) that
the system's apt configuration points at, and asks it for another suite.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import KtlskitError


class MirrorNotFoundError(KtlskitError):
    """No usable Debian archive entry in the system's apt sources."""


@dataclass(frozen=True)
class AptEntry:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str | None


def parse_deb822(text: str) -> list[AptEntry]:
    """Entries of a ``.sources`` file (deb822 stanzas)."""
    entries = []
    for stanza in re.split(r"\n\s*\n", text):
        fields = _deb822_fields(stanza)
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            entries.append(AptEntry(uri.rstrip("/"), tuple(fields.get("suites", "").split()),
                                    tuple(fields.get("components", "").split()),
                                    fields.get("signed-by") or None))
    return entries


def _deb822_fields(stanza: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = None
    for line in stanza.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line[0].isspace() and key:
            fields[key] += " " + line.strip()
            continue
        key, _, value = line.partition(":")
        key = key.strip().lower()
        fields[key] = value.strip()
    return fields


def parse_one_line(text: str) -> list[AptEntry]:
    """Entries of a classic ``sources.list`` (``deb [opts] URI suite comp...``)."""
    entries = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        m = re.match(r"deb\s+(?:\[(?P<opts>[^\]]*)\]\s+)?(?P<rest>.*)", line)
        if not m:
            continue
        parts = m["rest"].split()
        if len(parts) < 2:
            continue
        opts = dict(o.split("=", 1) for o in (m["opts"] or "").split() if "=" in o)
        entries.append(AptEntry(parts[0].rstrip("/"), (parts[1],), tuple(parts[2:]),
                                opts.get("signed-by")))
    return entries


def system_entries(etc: Path = Path("/etc/apt")) -> list[AptEntry]:
    entries: list[AptEntry] = []
    main = etc / "sources.list"
    if main.is_file():
        entries += parse_one_line(main.read_text())
    parts = etc / "sources.list.d"
    if parts.is_dir():
        for f in sorted(parts.iterdir()):
            if f.suffix == ".sources":
                entries += parse_deb822(f.read_text())
            elif f.suffix == ".list":
                entries += parse_one_line(f.read_text())
    return entries


def debian_archive(entries: list[AptEntry]) -> AptEntry:
    """The main Debian archive entry: a ``main`` component, not the security archive."""
    for e in entries:
        if "main" not in e.components:
            continue
        if any(s.endswith("-security") or "/" in s for s in e.suites):
            continue
        if e.uri.startswith(("http://", "https://", "file:")):
            return e
    raise MirrorNotFoundError(
        "no Debian archive with a 'main' component in /etc/apt/sources.list{,.d}; "
        "give --kernel-src PATH (a kernel tree or tarball) instead")
