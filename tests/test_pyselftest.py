"""Python kselftests: the helpers a test names, and the run tree laid out like the kernel's."""

from __future__ import annotations

from pathlib import Path

import pytest

from ktlskit.kselftest import KselftestError, build_selftest
from ktlskit.pyselftest import SELFTESTS, build_run_tree, helpers_named, is_python_test


def _tree(tmp_path: Path) -> Path:
    tree = tmp_path / "linux"
    d = tree / SELFTESTS / "drivers/net"
    (d / "lib/py").mkdir(parents=True)
    (d / "lib/py/__init__.py").write_text("")
    (d / "tls_offload.py").write_text('peer = cfg.remote.deploy("tls_offload_peer")\n')
    (d / "tls_offload_peer.c").write_text("int main(void) { return 0; }\n")
    (d / "tls_offload_peer_extra.c").write_text("/* not named by the test */\n")
    (d / "so_txtime.c").write_text("/* not named */\n")
    (tree / SELFTESTS / "net/lib/py").mkdir(parents=True)
    (tree / SELFTESTS / "net/lib/py/consts.py").write_text("")
    (tree / "tools/net/ynl/pyynl").mkdir(parents=True)
    (tree / "Documentation/netlink/specs").mkdir(parents=True)
    return tree


def test_only_the_helpers_the_test_names(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    test = tree / SELFTESTS / "drivers/net/tls_offload.py"
    assert helpers_named(test) == ["tls_offload_peer"]
    assert is_python_test(tree, "drivers/net/tls_offload.py")
    assert not is_python_test(tree, "drivers/net/nope.py")


def test_run_tree_mirrors_the_kernel_layout(tmp_path: Path) -> None:
    tree, out, run = _tree(tmp_path), tmp_path / "out", tmp_path / "run"
    built: list[str] = []

    def helper(target: Path, hout: Path, prog: str) -> None:
        hout.mkdir(parents=True, exist_ok=True)
        (hout / prog).write_text("binary")
        built.append(f"{target.name}/{prog}")

    argv = build_run_tree(tree, "drivers/net/tls_offload.py", out, run, helper)
    assert built == ["net/tls_offload_peer"]
    tdir = run / SELFTESTS / "drivers/net"
    assert argv == [str(tdir / "tls_offload.py")]
    assert (tdir / "tls_offload_peer").read_text() == "binary"
    assert not list(tdir.glob("*.c")), "sources stay in the tree"
    # lib/py computes KSRC six levels up from net/lib/py: the run tree's root
    assert (run / SELFTESTS / "net/lib/py/consts.py").is_file()
    assert (run / "tools/net/ynl/pyynl").is_dir() and (run / "Documentation/netlink/specs").is_dir()
    # a second run starts from a clean run tree
    (tdir / "stale").write_text("x")
    build_run_tree(tree, "drivers/net/tls_offload.py", out, run, helper)
    assert not (tdir / "stale").exists()


def test_a_missing_python_test_is_named_before_building(tmp_path: Path) -> None:
    class Fake:
        tree = _tree(tmp_path)
        build_dir = tmp_path / "build"

    with pytest.raises(KselftestError, match=r"no Python selftest 'nope\.py'"):
        build_selftest(Fake(), "drivers/net/nope.py")  # type: ignore[arg-type]
