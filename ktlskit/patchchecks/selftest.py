"""Selftest wiring (NIPA's check_selftest): new tests are built, ignored and configured.

For each file a patch adds under ``tools/testing/selftests/``:
 - a ``.sh``/``.py`` test is named in its directory's Makefile, a ``.c`` one
   (not ``.bpf.c``) by its stem, and the ``.c`` one's binary in ``.gitignore``;
 - the test's directory (or a parent below ``selftests/``) has a ``config``,
   and it sets every Kconfig symbol the series has introduced so far;
and lines the patch adds to a selftest ``config`` or Makefile list keep it sorted.
Files under a ``lib/`` directory are helpers picked up by wildcards and skipped.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

from .model import Check, Outcome, PatchContext, failed, passed

ROOT = "tools/testing/selftests/"
_KCONFIG_SYMBOL = re.compile(r"^\s*(?:menu)?config\s+([A-Z0-9_]+)\s*$")


def kconfig_symbols_added(ctx: PatchContext) -> set[str]:
    """``config FOO`` lines added to Kconfig files by the group's patches up to this one."""
    out: set[str] = set()
    for p in ctx.group.patches:
        for f in p.files:
            if f.path.rsplit("/", 1)[-1].startswith("Kconfig"):
                out |= {m[1] for line in f.added if (m := _KCONFIG_SYMBOL.match(line))}
        if p is ctx.patch:
            break
    return out


def find_config(tree: Path, test_dir: str) -> str | None:
    d = test_dir
    while d.startswith(ROOT) and len(d) > len(ROOT.rstrip("/")):
        if (tree / d / "config").is_file():
            return f"{d}/config"
        d = d.rsplit("/", 1)[0]
    return None


def _listed(tree: Path, rel: str, needle: str) -> bool:
    f = tree / rel
    return f.is_file() and re.search(rf"(?<![\w.-]){re.escape(needle)}(?![\w.-])",
                                     f.read_text(errors="replace")) is not None


def wiring_problems(tree: Path, path: str, new_symbols: set[str]) -> list[str]:
    d, base = path.rsplit("/", 1)
    if "/lib/" in f"/{path.removeprefix(ROOT)}":
        return []
    problems = []
    if base.endswith((".sh", ".py")):
        needle = base
    elif base.endswith(".c") and not base.endswith(".bpf.c"):
        needle = base[:-2]
        if not _listed(tree, f"{d}/.gitignore", needle):
            problems.append(f"{path}: {needle} not in {d}/.gitignore")
    else:
        return []
    if not _listed(tree, f"{d}/Makefile", needle):
        problems.append(f"{path}: {needle} not found in {d}/Makefile")
    cfg = find_config(tree, d)
    if cfg is None:
        problems.append(f"{path}: no config file in {d} or a parent: the options the test "
                        "needs are not recorded")
    else:
        text = (tree / cfg).read_text(errors="replace")
        problems += [f"{path}: CONFIG_{s} (added by the series) not set in {cfg}"
                     for s in sorted(new_symbols) if f"CONFIG_{s}=" not in text]
    return problems


def _config_key(line: str) -> str:
    return line.split("=", 1)[0].strip().replace("_", "")


def order_problems(tree: Path, path: str, added: tuple[str, ...]) -> list[str]:
    """Added lines of a selftest config/Makefile list that break its sort order."""
    if not (tree / path).is_file():
        return []
    lines = (tree / path).read_text(errors="replace").splitlines()
    new = {a for a in added if a.strip()}
    if path.endswith("/config"):
        entries = [ln for ln in lines if "=" in ln and not ln.lstrip().startswith("#")]
        pairs = itertools.pairwise(entries)
        return [f"{path}: {b.strip()!r} should come before {a.strip()!r}"
                for a, b in pairs if (a in new or b in new) and _config_key(b) < _config_key(a)]
    if path.endswith("/Makefile"):
        out = []
        for block in _list_blocks(lines):
            for a, b in itertools.pairwise(block):
                if (a in new or b in new) and _item_key(b) < _item_key(a):
                    out.append(f"{path}: {_item(b)!r} should come before {_item(a)!r}")
        return out
    return []


def _list_blocks(lines: list[str]) -> list[list[str]]:
    """Continuation lines of ``VAR [+:]= \\`` assignments (one item per line)."""
    blocks, cur = [], None
    for ln in lines:
        m = re.match(r"^([A-Z_][A-Z0-9_]*)\s*(?::?=|\+=)\s*\\$", ln)
        if m and "FLAGS" not in m[1] and "LIBS" not in m[1] and len(m[1]) >= 3:
            cur = []
            blocks.append(cur)
            continue
        if cur is not None and ln.startswith("\t") and not ln.strip().startswith(("#", "$")):
            cur.append(ln)
        if not ln.endswith("\\"):
            cur = None
    return blocks


def _item(line: str) -> str:
    return line.strip().removesuffix("\\").strip()


def _item_key(line: str) -> tuple[int, str]:
    item = _item(line)
    return item.count("/"), item.lower()


class SelftestWiring(Check):
    name = "selftest"
    needs_tree = True

    def run(self, ctx: PatchContext) -> Outcome:
        assert ctx.tree is not None
        touched = [f for f in ctx.patch.files if f.path.startswith(ROOT)]
        if not touched:
            return passed("no selftest files touched")
        symbols = kconfig_symbols_added(ctx)
        problems: list[str] = []
        new = [f for f in touched if f.status == "added"]
        for f in new:
            problems += wiring_problems(ctx.tree, f.path, symbols)
        for f in touched:
            problems += order_problems(ctx.tree, f.path, f.added)
        if problems:
            return failed(problems[0], problems)
        return passed(f"{len(new)} new, {len(touched) - len(new)} modified selftest file(s) "
                      "wired up")
