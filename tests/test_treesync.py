"""The cache's copy of a user's tree: a full rsync, then only the changed files."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from ktlskit.kernel import treesync


def _later(p: Path, s: float = 10.0) -> None:
    """Move the mtime past the last sync's stamp (file times are coarse)."""
    t = time.time() + s
    os.utime(p, (t, t))


@pytest.fixture()
def trees(tmp_path: Path) -> tuple[Path, Path]:
    src, dest = tmp_path / "linux", tmp_path / "cache" / "tree"
    (src / "net" / "tls").mkdir(parents=True)
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref\n")
    (src / "Makefile").write_text("all:\n")
    (src / "net" / "tls" / "tls_sw.c").write_text("int a;\n")
    (src / "net" / "tls" / "tls_main.c").write_text("int b;\n")
    treesync.sync_tree(src, dest, exclude=set())
    return src, dest


def test_the_first_sync_is_a_copy_without_git_and_leaves_a_stamp(trees: tuple[Path, Path]
                                                                ) -> None:
    _, dest = trees
    assert (dest / "net" / "tls" / "tls_sw.c").read_text() == "int a;\n"
    assert not (dest / ".git").exists()
    assert treesync.stamp_of(dest).is_file()


def test_no_stamp_means_no_shortcut(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "dest").mkdir()
    assert not treesync.copy_changed(tmp_path / "src", tmp_path / "dest", set())


def test_an_edited_file_is_copied_with_its_mtime_and_nothing_else(trees: tuple[Path, Path]
                                                                 ) -> None:
    src, dest = trees
    other = dest / "net" / "tls" / "tls_main.c"
    before = other.stat().st_mtime_ns
    f = src / "net" / "tls" / "tls_sw.c"
    f.write_text("int a2;\n")
    _later(f)
    assert treesync.copy_changed(src, dest, set())
    assert (dest / "net" / "tls" / "tls_sw.c").read_text() == "int a2;\n"
    assert (dest / "net" / "tls" / "tls_sw.c").stat().st_mtime_ns == f.stat().st_mtime_ns
    assert other.stat().st_mtime_ns == before
    # the next round copies only what is newer than this sync's stamp
    old = time.time() - 100
    os.utime(f, (old, old))
    f2 = dest / "net" / "tls" / "tls_sw.c"
    f2.write_text("changed in the copy only\n")
    assert treesync.copy_changed(src, dest, set())
    assert f2.read_text() == "changed in the copy only\n"


def test_a_new_file_in_an_existing_directory_is_copied(trees: tuple[Path, Path]) -> None:
    src, dest = trees
    (src / "net" / "tls" / "tls_new.c").write_text("int c;\n")
    _later(src / "net" / "tls" / "tls_new.c")
    _later(src / "net" / "tls")
    assert treesync.copy_changed(src, dest, set())
    assert (dest / "net" / "tls" / "tls_new.c").read_text() == "int c;\n"


@pytest.mark.parametrize("change", ["removed file", "new directory", "new symlink"])
def test_what_only_rsync_does_is_left_to_it(trees: tuple[Path, Path], change: str) -> None:
    src, dest = trees
    d = src / "net" / "tls"
    if change == "removed file":
        (d / "tls_main.c").unlink()
    elif change == "new directory":
        (d / "sub").mkdir()
    else:
        (d / "link.c").symlink_to("tls_sw.c")
    f = d / "tls_sw.c"
    f.write_text("int a3;\n")
    _later(f)
    _later(d)
    assert not treesync.copy_changed(src, dest, set())
    assert (dest / "net" / "tls" / "tls_sw.c").read_text() == "int a;\n"  # nothing copied
    treesync.sync_tree(src, dest, set())
    assert (dest / "net" / "tls" / "tls_sw.c").read_text() == "int a3;\n"


def test_the_series_files_are_left_alone(trees: tuple[Path, Path]) -> None:
    """Files the series touches (patched, or added by a patch: only in the copy) are the
    series' business, even when the directory holding them changed."""
    src, dest = trees
    (dest / "net" / "tls" / "tls_device.c").write_text("added by a patch\n")
    (dest / "net" / "tls" / "tls_main.c").write_text("patched\n")
    exclude = {"net/tls/tls_device.c", "net/tls/tls_main.c"}
    _later(src / "net" / "tls" / "tls_main.c")
    (src / "net" / "tls" / "tls_x.c").write_text("int x;\n")
    _later(src / "net" / "tls")
    assert treesync.copy_changed(src, dest, exclude)
    assert (dest / "net" / "tls" / "tls_main.c").read_text() == "patched\n"
    assert (dest / "net" / "tls" / "tls_device.c").read_text() == "added by a patch\n"
    assert (dest / "net" / "tls" / "tls_x.c").is_file()


def test_git_is_never_copied(trees: tuple[Path, Path]) -> None:
    src, dest = trees
    (src / ".git" / "index").write_text("idx\n")
    _later(src / ".git" / "index")
    _later(src / ".git")
    _later(src)
    assert treesync.copy_changed(src, dest, set())
    assert not (dest / ".git").exists()


def test_a_copy_that_lost_a_directory_is_left_to_rsync(trees: tuple[Path, Path]) -> None:
    src, dest = trees
    shutil.rmtree(dest / "net")
    f = src / "net" / "tls" / "tls_sw.c"
    _later(f)
    assert not treesync.copy_changed(src, dest, set())
    treesync.sync_tree(src, dest, set())
    assert (dest / "net" / "tls" / "tls_sw.c").read_text() == "int a;\n"
