"""The no-op check before every guest command: no rsync or make when nothing changed, and an
edit (or a deletion) in a user's tree is always seen."""

import json
import os
import time
from pathlib import Path

import pytest

from ktlskit.kernel import build, series, source
from ktlskit.kernel.source import KernelSource

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def tree_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[KernelSource, Path]:
    monkeypatch.setenv("KTLSKIT_CACHE", str(tmp_path / "cache"))
    # A --kernel-src is remembered in the project's .ktlskit.json: never this checkout's.
    monkeypatch.setattr(source, "remember", lambda *a, **k: None)
    monkeypatch.setenv("KTLSKIT_PROJECT", str(REPO))
    tree = tmp_path / "linux"
    (tree / "drivers/net/netdevsim").mkdir(parents=True)
    (tree / "Makefile").write_text("VERSION = 7\nPATCHLEVEL = 3\nSUBLEVEL = 4\n")
    (tree / "drivers/net/netdevsim/netdev.c").write_text("int x;\n")
    (tree / "drivers/net/netdevsim/old.c").write_text("int y;\n")
    src = source.tree_source(tree)
    bdir = build.build_dir_for(src, "default")
    (bdir / "arch/x86/boot").mkdir(parents=True)
    (bdir / "arch/x86/boot/bzImage").write_bytes(b"built")
    ser = series.load()
    result = build.BuildResult(bdir / "arch/x86/boot/bzImage", bdir, tree, "default",
                               ser.digest, src.ident, 1.0, build.fingerprint(src, "default", ser))
    (bdir / "ktlskit-build.json").write_text(json.dumps(result.to_json()))
    stamp = bdir / build.SRC_STAMP
    stamp.touch()
    past = time.time() + 0.5  # the build "started" after the files above were written
    os.utime(stamp, (past, past))
    for p in tree.rglob("*"):
        os.utime(p, (past - 10, past - 10))
    os.utime(tree, (past - 10, past - 10))
    return src, tree


def test_unchanged_tree_needs_no_build(tree_build: tuple[KernelSource, Path]) -> None:
    src, _ = tree_build
    assert build.up_to_date(src, "default", series.load()) is not None


def test_an_edit_is_seen(tree_build: tuple[KernelSource, Path]) -> None:
    src, tree = tree_build
    f = tree / "drivers/net/netdevsim/netdev.c"
    f.write_text("int x = 1;\n")
    os.utime(f, None)
    later = time.time() + 5
    os.utime(f, (later, later))
    assert build.up_to_date(src, "default", series.load()) is None


def test_a_deletion_is_seen(tree_build: tuple[KernelSource, Path]) -> None:
    src, tree = tree_build
    (tree / "drivers/net/netdevsim/old.c").unlink()
    later = time.time() + 5
    os.utime(tree / "drivers/net/netdevsim", (later, later))  # what unlink did, made certain
    assert build.up_to_date(src, "default", series.load()) is None


def test_other_series_or_config_means_a_build(tree_build: tuple[KernelSource, Path]) -> None:
    src, _ = tree_build
    assert build.up_to_date(src, "default", series.Series(REPO / "patches", ())) is None
    assert build.up_to_date(src, "debug", series.load()) is None


def test_pristine_sources_are_never_rescanned(tmp_path: Path) -> None:
    src = KernelSource("debian", tmp_path, "debian-x", "7.3.4")
    assert build.source_changed(src, tmp_path / "nobuild") is False


@pytest.mark.timeout(60)  # the bug this guards against is a wait on the lock
def test_an_up_to_date_profile_is_found_while_another_build_holds_the_lock(
        tree_build: tuple[KernelSource, Path]) -> None:
    """CI builds the debug kernel in the background while the tests use the default one."""
    import fcntl

    from ktlskit import paths
    from ktlskit.pipeline import KernelOptions, already_built, ensure_kernel
    _, tree = tree_build
    lock_dir = paths.cache_dir() / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / "build.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert already_built(KernelOptions(kernel_src=str(tree))) is not None
        found = ensure_kernel(KernelOptions(kernel_src=str(tree)))  # would block on the lock
        assert found[1].bzimage.read_bytes() == b"built"
        assert already_built(KernelOptions(kernel_src=str(tree), profile="debug")) is None


def test_a_profile_being_rebuilt_is_never_taken_as_built(
        tree_build: tuple[KernelSource, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from ktlskit.pipeline import KernelOptions, already_built
    src, tree = tree_build
    seen: list[object] = []

    def make_observing(*_a: object, **_k: object) -> None:
        seen.append(already_built(KernelOptions(kernel_src=str(tree))))
        raise RuntimeError("stop after the check")

    monkeypatch.setattr(build, "make", make_observing)
    monkeypatch.setattr(build.kconfig, "configure", lambda *a: None)
    monkeypatch.setattr(build.series, "prepared_tree", lambda *a: tree)
    with pytest.raises(RuntimeError):
        build.build(src, "default", series.load())
    assert seen == [None]


def test_a_prefix_of_the_series_has_its_own_build_directory(
        tree_build: tuple[KernelSource, Path]) -> None:
    """``--until``: the whole series' build is up to date, the prefix's is not (and never
    replaces it: its O= directory is PROFILE-until-NAME)."""
    src, _ = tree_build
    before = series.prefix(series.load(), "tls-offload")
    assert build.build_dir_for(src, "default", before.variant).name == \
        "default-until-tls-offload"
    assert build.up_to_date(src, "default", before) is None
    assert build.up_to_date(src, "default", series.load()) is not None
