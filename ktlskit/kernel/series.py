"""The quilt-style patch series and the patched copy of the tree it is applied to.

The pristine tree is copied (rsync, mtimes kept) into the cache and the
series applied there. A change of series (by content hash) reapplies it from
scratch; of the files either series touches, those whose patched content changed get a
fresh mtime and the others keep theirs, so an incremental build recompiles exactly what
changed (an edit to one file a patch also touches must not rebuild every user of a patched
header).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..errors import KtlskitError
from ..progress import say
from ..shell import cmd
from . import treesync
from .source import KernelSource


class SeriesError(KtlskitError):
    """The series file is malformed or a patch does not apply."""


@dataclass(frozen=True)
class Series:
    root: Path  # the directory holding the series file; patch paths are relative to it
    patches: tuple[Path, ...]
    until: str = ""
    """The sub-series this series ends with when it is a prefix (``prefix()``), else ""."""

    @property
    def variant(self) -> str:
        """The suffix of a prefix's build directory and tree (``-until-NAME``), else ""."""
        return f"-until-{self.until}" if self.until else ""

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for p in self.patches:
            h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
        return h.hexdigest()[:16]

    def touched_files(self) -> set[str]:
        files: set[str] = set()
        for p in self.patches:
            files |= patch_files(p.read_text(errors="replace"))
        return files


def load(series_file: Path | None = None) -> Series:
    """Parse ``patches/series``: one patch per line, ``#`` comments, blank lines."""
    sf = (series_file or paths.project_dir() / "patches" / "series").resolve()
    if not sf.is_file():
        return Series(sf.parent, ())
    patches = []
    for n, raw in enumerate(sf.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name = line.split()[0]
        p = sf.parent / name
        if not p.is_file():
            raise SeriesError(f"{sf}:{n}: patch {name} does not exist")
        patches.append(p)
    return Series(sf.parent, tuple(patches))


def sub_series(ser: Series) -> list[str]:
    """The directories the series' patches are in (``tls-fixes``, ...), in series order."""
    names: list[str] = []
    for p in ser.patches:
        rel = p.relative_to(ser.root) if p.is_relative_to(ser.root) else Path(p.name)
        if len(rel.parts) > 1 and rel.parts[0] not in names:
            names.append(rel.parts[0])
    return names


def prefix(ser: Series, until: str) -> Series:
    """The series up to and including the last patch of sub-series ``until``: the series
    itself (``until`` ""), when that is its last patch. An unknown name is an error that
    lists the valid ones; it reads only the series' paths, never a tree."""
    names = sub_series(ser)
    if until not in names:
        raise SeriesError(f"no sub-series {until!r} in {ser.root / 'series'}; "
                          f"its sub-series are: {', '.join(names) or '(none)'}")
    last = max(i for i, p in enumerate(ser.patches)
               if p.is_relative_to(ser.root / until))
    if last == len(ser.patches) - 1:
        return ser
    return Series(ser.root, ser.patches[:last + 1], until)


def patch_files(text: str) -> set[str]:
    """Paths a unified diff changes (``-p1`` style a/ b/ prefixes stripped)."""
    files = set()
    for m in re.finditer(r"^(?:\+\+\+|---) (\S+)", text, re.M):
        path = m[1]
        if path == "/dev/null":
            continue
        files.add(path.split("/", 1)[1] if "/" in path else path)
    return files


def _state_file(tree: Path) -> Path:
    return tree.with_name(tree.name + ".series.json")


def prepared_tree(src: KernelSource, series: Series) -> Path:
    """A copy of ``src`` with ``series`` applied; reused while nothing changed."""
    tree = paths.cache_dir() / "trees" / f"{src.ident}{series.variant}"
    state_f = _state_file(tree)
    state = json.loads(state_f.read_text()) if state_f.is_file() else None
    touched = series.touched_files()
    if state and state["digest"] == series.digest and src.kind != "tree":
        return tree
    if state and state["digest"] == series.digest and _pristine_same(src, state, touched):
        if not treesync.copy_changed(src.path, tree, exclude=touched):
            treesync.sync_tree(src.path, tree, exclude=touched)
        return tree
    old_touched = set(state["pristine"]) if state else set()
    before = _snapshot(tree, touched | old_touched) if state else {}
    state_f.unlink(missing_ok=True)
    # The series' files go back to pristine and the series is applied again: the user
    # edited one of them (netdevsim's netdev.c, say) or the series changed.
    if state and treesync.copy_changed(src.path, tree, exclude=touched | old_touched):
        treesync.restore(src.path, tree, touched | old_touched)
    else:
        treesync.sync_tree(src.path, tree, exclude=set())
    apply_all(series, tree)
    _freshen(tree, touched | old_touched, before)
    state_f.write_text(json.dumps({
        "digest": series.digest,
        "patches": [p.name for p in series.patches],
        "pristine": {f: _digest_or_none(src.path / f) for f in sorted(touched)},
    }, indent=1))
    return tree


def _pristine_same(src: KernelSource, state: dict, touched: set[str]) -> bool:
    return all(_digest_or_none(src.path / f) == state["pristine"].get(f) for f in touched)


def _digest_or_none(p: Path) -> str | None:
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None


def apply_all(series: Series, tree: Path) -> None:
    for p in series.patches:
        apply_one(p, tree)
    if series.patches:
        say(f"applied {len(series.patches)} patch(es), series {series.digest}")


def apply_one(patch: Path, tree: Path) -> None:
    """``patch -p1``; on failure the error names the patch and carries the rejects."""
    with tempfile.NamedTemporaryFile("r", suffix=".rej") as rej:
        res = cmd(["patch", "-p1", "--batch", "--forward", "--no-backup-if-mismatch",
                   f"--reject-file={rej.name}", "-i", patch],
                  cwd=tree, timeout=120, check=False)
        if res.rc != 0:
            rejected = Path(rej.name).read_text(errors="replace")
            raise SeriesError(f"patch {patch.name} does not apply:\n{res.stdout}{res.stderr}"
                              f"\nrejected hunks:\n{rejected}")


def _snapshot(tree: Path, files: set[str]) -> dict[str, tuple[str, int]]:
    """(content digest, mtime in ns) of each of ``files`` the patched tree has now."""
    out = {}
    for f in files:
        p = tree / f
        if p.is_file():
            out[f] = (_digest_or_none(p) or "", p.stat().st_mtime_ns)
    return out


def _freshen(tree: Path, files: set[str], before: dict[str, tuple[str, int]]) -> None:
    """A fresh mtime for each of ``files`` whose content differs from ``before``; the
    others get their mtime back."""
    now = time.time_ns()
    for f in files:
        p = tree / f
        if not p.is_file():
            continue
        old = before.get(f)
        mtime = old[1] if old and _digest_or_none(p) == old[0] else now
        os.utime(p, ns=(mtime, mtime))
