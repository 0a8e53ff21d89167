"""The honest proof for a case the harness killed for time: the same source, built against a
copy of the real kselftest harness with its per-case limit raised, decides pass or fail."""

import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from ktlskit.kernel import source
from ktlskit.kselftest import long_limit_variant, timed_out

SLOW = """#include <unistd.h>
#include "kselftest_harness.h"

TEST(slow_case) { sleep(2); }

TEST_HARNESS_MAIN
"""


@pytest.fixture()
def fake_build(tmp_path: Path) -> SimpleNamespace:
    tree = source.fetched_default_tree()  # in this cache: KTLSKIT_CACHE is honoured
    if tree is None:
        pytest.skip("the default kernel source is not fetched (ktlskit kernel fetch)")
    pristine = tree / "tools/testing/selftests"
    sd = tmp_path / "tree/tools/testing/selftests"
    (sd / "demo").mkdir(parents=True)
    for h in ("kselftest_harness.h", "kselftest.h"):
        shutil.copy(pristine / h, sd / h)
    (sd / "demo/slow.c").write_text(SLOW)
    (tmp_path / "build/usr/include").mkdir(parents=True)
    return SimpleNamespace(tree=tmp_path / "tree", build_dir=tmp_path / "build")


def _run(binary: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=60, check=False)


def test_a_limit_below_the_case_kills_it(fake_build: SimpleNamespace) -> None:
    res = _run(long_limit_variant(fake_build, "demo/slow", limit=1))  # type: ignore[arg-type]
    assert res.returncode != 0
    assert timed_out(res.stdout) == ["global.slow_case"], res.stdout


def test_a_raised_limit_lets_it_finish(fake_build: SimpleNamespace) -> None:
    res = _run(long_limit_variant(fake_build, "demo/slow", limit=5))  # type: ignore[arg-type]
    assert res.returncode == 0, res.stdout
    assert "ok 1 global.slow_case" in res.stdout
    harness = fake_build.tree / "tools/testing/selftests/kselftest_harness.h"
    assert "TEST_TIMEOUT_DEFAULT 30" in harness.read_text()  # the tree is untouched
