"""The host writes the bytecode a guest's Python cannot (its view of the project is read-only)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

from ktlskit.guest.bytecode import PACKAGE, compile_for_guest


def _package(tmp_path: Path) -> Path:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "mod.py").write_text("VALUE = 1\n")
    return pkg


def _pyc(src: Path) -> Path:
    return Path(importlib.util.cache_from_source(str(src)))


def _current(src: Path) -> bool:
    """What the import system checks: the source's mtime and size in the pyc's header."""
    pyc = _pyc(src)
    if not pyc.is_file():
        return False
    head = pyc.read_bytes()[:16]
    st = src.stat()
    return (int.from_bytes(head[8:12], "little") == int(st.st_mtime) & 0xFFFFFFFF
            and int.from_bytes(head[12:16], "little") == st.st_size & 0xFFFFFFFF)


def test_missing_bytecode_is_written_even_if_the_caller_forbids_writing_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # PYTHONDONTWRITEBYTECODE=1
    pkg = _package(tmp_path)
    assert compile_for_guest(pkg)
    for src in pkg.rglob("*.py"):
        assert _current(src), src


def test_stale_bytecode_is_rewritten(tmp_path: Path) -> None:
    pkg = _package(tmp_path)
    mod = pkg / "sub" / "mod.py"
    assert compile_for_guest(pkg)
    mod.write_text("VALUE = 22\n")
    os.utime(mod, (mod.stat().st_atime, mod.stat().st_mtime + 5))
    assert not _current(mod)
    assert compile_for_guest(pkg)
    assert _current(mod)


def test_bytecode_that_cannot_be_written_is_reported_not_raised(tmp_path: Path) -> None:
    """As in a read-only install (root writes anywhere, so ``__pycache__`` is a file here)."""
    pkg = _package(tmp_path)
    (pkg / "sub" / "__pycache__").write_text("not a directory")
    assert not compile_for_guest(pkg)
    assert _current(pkg / "__init__.py")


def test_a_syntax_error_is_reported_not_raised(tmp_path: Path) -> None:
    pkg = _package(tmp_path)
    (pkg / "broken.py").write_text("def (:\n")
    assert not compile_for_guest(pkg)
    assert _current(pkg / "sub" / "mod.py")


def test_the_default_is_the_ktlskit_package_itself() -> None:
    assert (PACKAGE / "hosts" / "callserver.py").is_file()
