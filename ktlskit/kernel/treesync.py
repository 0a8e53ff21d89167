"""Keep the cache's copy of a user's kernel tree in step with the tree (``series.py`` applies
the series to the copy).

The first copy, and any change that adds or removes entries, is a full ``rsync``: 2.1 s for
a whole tree on the 2-core test machine, in every edit-test round. Each sync leaves a stamp
(``TREE.synced``, with the time the sync started), so the usual round, where the user saved a
few files, copies just the regular files newer than the stamp: one ``find`` over the tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ..progress import say, step
from ..shell import cmd

FIND_TIMEOUT = 300.0


def stamp_of(dest: Path) -> Path:
    return dest.with_name(dest.name + ".synced")


def sync_tree(src: Path, dest: Path, exclude: set[str]) -> None:
    """Make ``dest`` a copy of ``src`` (no ``.git``), leaving the files in ``exclude`` (paths
    relative to the tree: the series' files) as they are in ``dest``."""
    started = time.time()
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".exclude") as ex:
        ex.write("".join(f"/{f}\n" for f in sorted(exclude)))
        ex.flush()
        with step(f"syncing kernel tree into {dest}"):
            cmd(["rsync", "-a", "--delete", "--exclude=/.git", f"--exclude-from={ex.name}",
                 f"{src}/", f"{dest}/"], timeout=1800)
    _mark(dest, started)


def copy_changed(src: Path, dest: Path, exclude: set[str]) -> bool:
    """What ``sync_tree`` would do when only regular files changed or were added since the
    last sync: copy those (mtimes kept, so make sees them). False, with nothing copied, when
    it cannot tell or cannot do it alone: no stamp, a removed entry, a new directory or a
    symlink (or, with some files copied, when the copy is missing a directory)."""
    stamp = stamp_of(dest)
    if not (stamp.is_file() and dest.is_dir()):
        return False
    started = time.time()
    files = _changed_files(src, dest, stamp, exclude)
    if files is None:
        return False
    try:
        for rel in files:
            shutil.copy2(src / rel, dest / rel)
    except OSError:
        return False  # the copy lost a directory, say: rsync puts everything right
    _mark(dest, started)
    say(f"kernel tree: {len(files)} changed file(s) copied into {dest}")
    return True


def restore(src: Path, dest: Path, files: set[str]) -> None:
    """Put ``files`` back as ``src`` has them (mtimes kept), before a series is applied again
    to a copy ``copy_changed`` brought up to date; one that ``src`` lacks (a patch added it)
    is removed."""
    for rel in sorted(files):
        if (src / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, dest / rel)
        else:
            (dest / rel).unlink(missing_ok=True)


def find_newer(src: Path, stamp: Path, *action: str) -> subprocess.CompletedProcess[str]:
    """``find`` over the tree (``.git`` left out) for the entries newer than ``stamp``, each
    given to ``action`` (``-print``, ``-quit``, ``-printf``...)."""
    return subprocess.run(["find", str(src), "-path", str(src / ".git"), "-prune", "-o",
                           "-newer", str(stamp), *action],
                          capture_output=True, text=True, timeout=FIND_TIMEOUT, check=False)


def _changed_files(src: Path, dest: Path, stamp: Path, exclude: set[str]) -> list[str] | None:
    res = find_newer(src, stamp, "-printf", r"%y %P\n")
    if res.returncode != 0:
        return None
    files: list[str] = []
    for line in res.stdout.splitlines():
        kind, rel = line[:1], line[2:]
        if kind == "f":
            files.append(rel)
        elif kind != "d":
            return None
        else:
            added = _added_files(src, dest, rel, exclude)
            if added is None:
                return None
            files += added
    return sorted({f for f in files if f not in exclude})


def _added_files(src: Path, dest: Path, rel: str, exclude: set[str]) -> list[str] | None:
    """A directory newer than the stamp: its new entries if they are all regular files, None
    if one was removed (or it is new itself, or holds a new directory)."""
    try:
        have = set(os.listdir(dest / rel))
        now = set(os.listdir(src / rel))
    except OSError:
        return None
    join = (lambda n: f"{rel}/{n}") if rel else (lambda n: n)
    top_git = {".git"} if not rel else set()
    if any(join(n) not in exclude for n in have - now):
        return None
    added = [join(n) for n in sorted(now - have - top_git)]
    if any(not (src / a).is_file() or (src / a).is_symlink() for a in added):
        return None
    return added


#: The stamp is set this far before the sync started: file times come from a coarse clock
#: (a write just after the start can be stamped a few ms before it), and copying a file twice
#: costs nothing (its mtime is kept, so make does not rebuild for it).
MARGIN = 1.0


def _mark(dest: Path, started: float) -> None:
    stamp = stamp_of(dest)
    stamp.touch()
    os.utime(stamp, (started - MARGIN, started - MARGIN))
