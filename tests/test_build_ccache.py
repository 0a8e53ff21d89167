"""The build's ccache runs in depend mode: a compile as kbuild issues it (``-Wp,-MMD,...``)
is stored, hit when nothing changed, and missed when a header it includes changed."""

import shutil
import subprocess
from pathlib import Path

import pytest

from ktlskit.kernel import build

pytestmark = pytest.mark.skipif(not (shutil.which("ccache") and shutil.which("gcc")),
                                reason="needs ccache and gcc")


def compile_like_kbuild(tree: Path, env: dict[str, str]) -> None:
    """One object the way kbuild compiles it: a dependency file by -Wp,-MMD and -include."""
    subprocess.run(["ccache", "gcc", "-Wp,-MMD,.x.o.d", "-include", "conf.h", "-I", ".",
                    "-c", "x.c", "-o", "x.o"], cwd=tree, env=env, check=True, timeout=60)


def stats(env: dict[str, str]) -> dict[str, int]:
    out = subprocess.run(["ccache", "--print-stats"], env=env, check=True, text=True,
                         capture_output=True, timeout=30).stdout
    values = dict(line.split("\t")[:2] for line in out.splitlines() if "\t" in line)
    return {k: int(values.get(k, "0")) for k in ("direct_cache_hit", "cache_miss",
                                                  "preprocessed_cache_hit")}


def test_depend_mode_hits_a_repeat_and_misses_a_changed_header(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KTLSKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CCACHE_NODEPEND", raising=False)
    env = build.make_env()
    assert env["CCACHE_DEPEND"] == "1"
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "conf.h").write_text("#define CONFIG_X 1\n")
    (tree / "x.h").write_text("static inline int x(void) { return CONFIG_X; }\n")
    (tree / "x.c").write_text('#include "x.h"\nint f(void) { return x(); }\n')
    compile_like_kbuild(tree, env)
    compile_like_kbuild(tree, env)
    assert stats(env) == {"direct_cache_hit": 1, "cache_miss": 1, "preprocessed_cache_hit": 0}
    # a header named only in the -MMD file (never on the command line) still decides
    (tree / "x.h").write_text("static inline int x(void) { return CONFIG_X + 1; }\n")
    compile_like_kbuild(tree, env)
    assert stats(env)["cache_miss"] == 2
    (tree / "x.o").unlink()
    compile_like_kbuild(tree, env)
    assert stats(env)["direct_cache_hit"] == 2
    # the object is the new header's, not the first one's
    disasm = subprocess.run(["objdump", "-d", "x.o"], cwd=tree, text=True, check=True,
                            capture_output=True, timeout=30).stdout
    assert "$0x2" in disasm, disasm
    # depend mode, not the default: a trailing comment changes no preprocessed output (the
    # default mode's preprocessor would find the earlier result), yet it is a miss
    (tree / "x.h").write_text("static inline int x(void) { return CONFIG_X + 1; } /* c */\n")
    compile_like_kbuild(tree, env)
    assert stats(env) == {"direct_cache_hit": 2, "cache_miss": 3, "preprocessed_cache_hit": 0}


def test_nodepend_in_the_environment_turns_depend_mode_off(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KTLSKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CCACHE_NODEPEND", "1")
    assert "CCACHE_DEPEND" not in build.make_env()
