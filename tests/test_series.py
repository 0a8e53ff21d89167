import os
import time
from pathlib import Path

import pytest

from ktlskit.kernel import series
from ktlskit.kernel.source import KernelSource

PATCH_A = """\
From: Dev <dev@example.invalid>
Subject: [PATCH 1/2] a: say hello

---
 a.c | 2 +-
 1 file changed, 1 insertion(+), 1 deletion(-)

diff --git a/a.c b/a.c
--- a/a.c
+++ b/a.c
@@ -1,3 +1,3 @@
 int a;
-int b;
+int hello;
 int c;
"""

PATCH_NEW_FILE = """\
diff --git a/drivers/new.c b/drivers/new.c
new file mode 100644
--- /dev/null
+++ b/drivers/new.c
@@ -0,0 +1 @@
+int fresh;
"""

PATCH_BAD = """\
diff --git a/a.c b/a.c
--- a/a.c
+++ b/a.c
@@ -1,3 +1,3 @@
 int a;
-int nothere;
+int other;
 int c;
"""


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[KernelSource, Path]:
    monkeypatch.setenv("KTLSKIT_CACHE", str(tmp_path / "cache"))
    tree = tmp_path / "linux"
    tree.mkdir()
    (tree / "a.c").write_text("int a;\nint b;\nint c;\n")
    (tree / "b.c").write_text("int untouched;\n")
    old = time.time() - 3600
    for f in tree.iterdir():
        os.utime(f, (old, old))
    pdir = tmp_path / "patches"
    pdir.mkdir()
    (pdir / "0001-a.patch").write_text(PATCH_A)
    (pdir / "0002-new.patch").write_text(PATCH_NEW_FILE)
    (pdir / "bad.patch").write_text(PATCH_BAD)
    return KernelSource("tree", tree, "tree-test", "7.3.4"), pdir


def _series(pdir: Path, names: list[str]) -> series.Series:
    (pdir / "series").write_text("# test series\n" + "".join(f"{n}\n" for n in names) + "\n")
    return series.load(pdir / "series")


def test_load_skips_comments_and_checks_existence(env: tuple[KernelSource, Path]) -> None:
    _, pdir = env
    ser = _series(pdir, ["0001-a.patch", "0002-new.patch"])
    assert [p.name for p in ser.patches] == ["0001-a.patch", "0002-new.patch"]
    (pdir / "series").write_text("missing.patch\n")
    with pytest.raises(series.SeriesError, match=r"series:1: patch missing.patch"):
        series.load(pdir / "series")


def test_touched_files() -> None:
    assert series.patch_files(PATCH_A) == {"a.c"}
    assert series.patch_files(PATCH_NEW_FILE) == {"drivers/new.c"}


def test_apply_into_a_copy_and_reapply_on_change(env: tuple[KernelSource, Path]) -> None:
    src, pdir = env
    tree = series.prepared_tree(src, _series(pdir, ["0001-a.patch", "0002-new.patch"]))
    assert tree != src.path
    assert "hello" in (tree / "a.c").read_text()
    assert (tree / "drivers/new.c").read_text() == "int fresh;\n"
    assert "hello" not in (src.path / "a.c").read_text(), "pristine tree must not change"
    # untouched files keep the pristine mtime, so make does not rebuild them
    assert (tree / "b.c").stat().st_mtime == (src.path / "b.c").stat().st_mtime
    # drop patch 1: a.c goes back to pristine content with a *new* mtime
    patched_mtime = (tree / "a.c").stat().st_mtime
    tree2 = series.prepared_tree(src, _series(pdir, ["0002-new.patch"]))
    assert tree2 == tree
    assert (tree / "a.c").read_text() == "int a;\nint b;\nint c;\n"
    assert (tree / "a.c").stat().st_mtime >= patched_mtime
    assert (tree / "a.c").stat().st_mtime > (src.path / "a.c").stat().st_mtime


def test_unchanged_series_is_not_reapplied(env: tuple[KernelSource, Path]) -> None:
    src, pdir = env
    ser = _series(pdir, ["0001-a.patch"])
    tree = series.prepared_tree(src, ser)
    m1 = (tree / "a.c").stat().st_mtime_ns
    series.prepared_tree(src, ser)
    assert (tree / "a.c").stat().st_mtime_ns == m1


def test_user_tree_edits_propagate(env: tuple[KernelSource, Path]) -> None:
    src, pdir = env
    ser = _series(pdir, ["0001-a.patch"])
    tree = series.prepared_tree(src, ser)
    (src.path / "b.c").write_text("int edited;\n")
    series.prepared_tree(src, ser)
    assert (tree / "b.c").read_text() == "int edited;\n"
    assert "hello" in (tree / "a.c").read_text()


def test_edits_to_patched_and_other_files_with_a_new_series(
        env: tuple[KernelSource, Path]) -> None:
    """The copy is brought up to date by copying what changed (no full rsync): the series'
    files go back to pristine first, so the new series applies to the user's new content and
    a file only the old series added is gone."""
    src, pdir = env
    tree = series.prepared_tree(src, _series(pdir, ["0001-a.patch", "0002-new.patch"]))
    assert (tree / "drivers" / "new.c").is_file()
    (src.path / "a.c").write_text("int a;\nint b;\nint c;\nint edited;\n")
    (src.path / "b.c").write_text("int also_edited;\n")
    later = time.time() + 5
    for f in ("a.c", "b.c"):
        os.utime(src.path / f, (later, later))
    series.prepared_tree(src, _series(pdir, ["0001-a.patch"]))
    assert (tree / "a.c").read_text() == "int a;\nint hello;\nint c;\nint edited;\n"
    assert (tree / "b.c").read_text() == "int also_edited;\n"
    assert not (tree / "drivers" / "new.c").exists()


def test_patch_that_does_not_apply_names_itself_and_the_hunk(
        env: tuple[KernelSource, Path]) -> None:
    src, pdir = env
    with pytest.raises(series.SeriesError) as err:
        series.prepared_tree(src, _series(pdir, ["0001-a.patch", "bad.patch"]))
    msg = str(err.value)
    assert "bad.patch does not apply" in msg
    assert "-int nothere;" in msg


def test_reapplying_keeps_the_mtime_of_patched_files_whose_content_is_the_same(
        env: tuple[KernelSource, Path]) -> None:
    """An edit to a file the series also patches re-applies the series, but only the edited
    file may look new to make: the other patched files (headers!) keep their mtime."""
    src, pdir = env
    (pdir / "0003-b.patch").write_text(PATCH_A.replace("a.c", "b.c").replace(
        " int a;\n-int b;\n+int hello;\n int c;\n", "-int untouched;\n+int patched;\n").replace(
        "@@ -1,3 +1,3 @@", "@@ -1 +1 @@"))
    ser = _series(pdir, ["0001-a.patch", "0003-b.patch"])
    tree = series.prepared_tree(src, ser)
    assert (tree / "b.c").read_text() == "int patched;\n"
    a_mtime = (tree / "a.c").stat().st_mtime_ns
    b_mtime = (tree / "b.c").stat().st_mtime_ns
    time.sleep(0.01)
    (src.path / "a.c").write_text("int a;\nint b;\nint c;\nint edited;\n")
    series.prepared_tree(src, ser)
    assert (tree / "a.c").read_text() == "int a;\nint hello;\nint c;\nint edited;\n"
    assert (tree / "a.c").stat().st_mtime_ns > a_mtime
    assert (tree / "b.c").stat().st_mtime_ns == b_mtime


# ---- prefixes: the series up to a sub-series (ktlskit kernel build --until) ----------------

def _sub_series(pdir: Path) -> series.Series:
    """Two sub-series: ``one/`` (patch A) then ``two/`` (the new file)."""
    for sub, name, text in (("one", "0001-a.patch", PATCH_A),
                            ("two", "0001-new.patch", PATCH_NEW_FILE)):
        (pdir / sub).mkdir(exist_ok=True)
        (pdir / sub / name).write_text(text)
    return _series(pdir, ["one/0001-a.patch", "two/0001-new.patch"])


def test_sub_series_are_the_patch_directories_in_series_order(
        env: tuple[KernelSource, Path]) -> None:
    ser = _sub_series(env[1])
    assert series.sub_series(ser) == ["one", "two"]
    assert series.sub_series(series.Series(ser.root, ())) == []


def test_a_prefix_ends_with_the_last_patch_of_its_sub_series(
        env: tuple[KernelSource, Path]) -> None:
    ser = _sub_series(env[1])
    one = series.prefix(ser, "one")
    assert [p.name for p in one.patches] == ["0001-a.patch"]
    assert one.until == "one" and one.variant == "-until-one"
    assert one.digest != ser.digest
    # up to the last sub-series is the whole series: the same build, not a second one
    assert series.prefix(ser, "two") == ser and ser.variant == ""


def test_an_unknown_sub_series_lists_the_valid_ones(env: tuple[KernelSource, Path]) -> None:
    ser = _sub_series(env[1])
    with pytest.raises(series.SeriesError, match=r"no sub-series 'three' .*: one, two$"):
        series.prefix(ser, "three")


def test_the_project_series_has_its_three_sub_series() -> None:
    ser = series.load(Path(__file__).resolve().parents[1] / "patches" / "series")
    assert series.sub_series(ser) == ["tls-fixes", "tls-offload", "tls-rekey"]
    before = series.prefix(ser, "tls-offload")
    assert before.patches[-1].parent.name == "tls-offload"
    assert not any(p.parent.name == "tls-rekey" for p in before.patches)
    assert ser.patches[:len(before.patches)] == before.patches


def test_a_prefix_has_its_own_tree_and_leaves_the_whole_series_tree_alone(
        env: tuple[KernelSource, Path]) -> None:
    """Switching between the two builds must not touch either tree (no recompiles)."""
    src, pdir = env
    ser = _sub_series(pdir)
    whole = series.prepared_tree(src, ser)
    mtimes = {f: (whole / f).stat().st_mtime_ns for f in ("a.c", "drivers/new.c")}
    before = series.prepared_tree(src, series.prefix(ser, "one"))
    assert before != whole and before.name == f"{src.ident}-until-one"
    assert "hello" in (before / "a.c").read_text()
    assert not (before / "drivers/new.c").exists()
    assert series.prepared_tree(src, ser) == whole
    assert {f: (whole / f).stat().st_mtime_ns for f in mtimes} == mtimes
