"""Python kselftests (``drivers/net/*.py`` on the kernel's ``lib/py``), run from a run tree.

A Python selftest finds the kernel sources from where its library lives (``net/lib/py``'s
``KSRC``: YNL in ``tools/net/ynl``, specs in ``Documentation/netlink/specs``) and its helper
programs next to itself (``cfg.test_dir``). ``make install`` of its whole target would build
every program there (BPF objects need clang, YNL programs their generated headers), so only
the C helpers the test names are built, and the test runs from a copy of the parts of the tree
it uses, laid out as in the kernel, with the helpers beside it.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

SELFTESTS = Path("tools/testing/selftests")
RUN_TREE_PARTS = (SELFTESTS / "net/lib", Path("tools/net/ynl"),
                  Path("Documentation/netlink/specs"))
"""What every ``lib/py`` test needs besides its own directory."""


def is_python_test(tree: Path, name: str) -> bool:
    return name.endswith(".py") and (tree / SELFTESTS / name).is_file()


def helpers_named(test: Path) -> list[str]:
    """The C programs of the test's directory whose names appear in the test."""
    text = test.read_text()
    return sorted(c.stem for c in test.parent.glob("*.c")
                  if re.search(rf"\b{re.escape(c.stem)}\b", text))


def build_run_tree(tree: Path, name: str, out: Path, run: Path,
                   build_helper: Callable[[Path, Path, str], None]) -> list[str]:
    """Build the helpers into ``out`` and lay out ``run``; returns the argv to run the test.

    ``build_helper(target_dir, out, helper)`` builds one program as ``out/helper``.
    """
    test = tree / SELFTESTS / name
    target = test.parent
    helpers = helpers_named(test)
    for helper in helpers:
        build_helper(target, out, helper)
    if run.exists():
        shutil.rmtree(run)
    rel_target = target.relative_to(tree)
    shutil.copytree(target, run / rel_target,
                    ignore=shutil.ignore_patterns("*.c", "__pycache__"))
    for part in RUN_TREE_PARTS:
        if (tree / part).is_dir():
            shutil.copytree(tree / part, run / part,
                            ignore=shutil.ignore_patterns("__pycache__"))
    for helper in helpers:
        shutil.copy2(out / helper, run / rel_target / helper)
    return [str(run / SELFTESTS / name)]
