from pathlib import Path

import pytest

from ktlskit.kernel.aptmirror import (
    MirrorNotFoundError,
    debian_archive,
    parse_deb822,
    parse_one_line,
    system_entries,
)

DEB822 = """\
Types: deb
# a comment
URIs: http://mirror.invalid/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.invalid/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://mirror.invalid/src
Suites: bookworm
Components: main
"""


def test_deb822_entries_and_choice() -> None:
    entries = parse_deb822(DEB822)
    assert [e.uri for e in entries] == ["http://mirror.invalid/debian",
                                        "http://mirror.invalid/debian-security"]
    chosen = debian_archive(entries)
    assert chosen.uri == "http://mirror.invalid/debian"
    assert chosen.signed_by == "/usr/share/keyrings/debian-archive-keyring.gpg"


def test_one_line_format_with_options() -> None:
    text = ("deb [arch=amd64 signed-by=/k.gpg] http://m.invalid/debian/ bookworm main contrib\n"
            "# deb http://commented.invalid/debian bookworm main\n"
            "deb http://m.invalid/debian-security bookworm-security main\n")
    entries = parse_one_line(text)
    assert len(entries) == 2
    assert entries[0].uri == "http://m.invalid/debian"
    assert entries[0].signed_by == "/k.gpg"
    assert debian_archive(entries).uri == "http://m.invalid/debian"


def test_no_archive_is_a_clear_error() -> None:
    entries = parse_one_line("deb http://m.invalid/debian-security bookworm-security main\n")
    with pytest.raises(MirrorNotFoundError, match="--kernel-src"):
        debian_archive(entries)


def test_disabled_stanza_is_ignored() -> None:
    assert parse_deb822("Types: deb\nURIs: http://x.invalid/d\nSuites: s\n"
                        "Components: main\nEnabled: no\n") == []


def test_reads_a_sources_directory(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    (tmp_path / "sources.list.d" / "other.list.disabled").write_text("deb http://no/ x main\n")
    assert len(system_entries(tmp_path)) == 2
