"""A small real kernel-shaped tree for the ``patches check`` host tests.

``fixtures/minikernel`` holds a Makefile (the real compiler with kbuild's W=1
flags and output lines), a demo driver, a selftest directory and a small
MAINTAINERS. The kernel's own scripts (checkpatch.pl, kernel-doc,
get_maintainer.pl, min-tool-version.sh) are copied in from the cached Debian
kernel source; without it the tests that need them are skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "minikernel"
SCRIPTS = ("scripts/checkpatch.pl", "scripts/spelling.txt", "scripts/const_structs.checkpatch",
           "scripts/get_maintainer.pl", "scripts/min-tool-version.sh", "tools/docs/kernel-doc")
TOP_FILES = ("COPYING", "CREDITS", "Kbuild", "README")
TOP_DIRS = ("Documentation", "arch", "fs", "init", "ipc", "kernel", "lib")
AUTHOR = "Dev Eloper <dev@example.org>"
GIT_ENV = {"GIT_AUTHOR_NAME": "Dev Eloper", "GIT_AUTHOR_EMAIL": "dev@example.org",
           "GIT_COMMITTER_NAME": "Dev Eloper", "GIT_COMMITTER_EMAIL": "dev@example.org",
           "GIT_AUTHOR_DATE": "2026-01-02T03:04:05+00:00",
           "GIT_COMMITTER_DATE": "2026-01-02T03:04:05+00:00", "GIT_CONFIG_NOSYSTEM": "1"}


def kernel_source() -> Path:
    """The cached Debian kernel tree, or skip with the reason."""
    base = Path(os.environ.get("KTLSKIT_CACHE") or Path.home() / ".cache" / "ktlskit")
    tree = base / "src" / "debian" / "linux-source-7.3"
    if not (tree / "scripts" / "checkpatch.pl").is_file():
        pytest.skip(f"needs the kernel's scripts from the cached kernel source ({tree}), "
                    "which is not fetched: run `ktlskit kernel fetch`")
    return tree


def make_tree(dest: Path, kernel: Path) -> Path:
    """The fixture plus the kernel's scripts, as a tree checkpatch accepts as a kernel's top."""
    shutil.copytree(FIXTURE, dest)
    for rel in SCRIPTS:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(kernel / rel, dest / rel)
    shutil.copytree(kernel / "tools/lib/python", dest / "tools/lib/python")
    (dest / "scripts/kernel-doc").symlink_to("../tools/docs/kernel-doc")
    for f in TOP_FILES:
        (dest / f).write_text(f"{f} of the ktlskit test tree\n")
    for d in TOP_DIRS:
        (dest / d).mkdir(exist_ok=True)
    return dest


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", "-C", str(repo), *args], env=env, check=True, text=True,
                          capture_output=True, timeout=60).stdout


def history(tree: Path) -> None:
    """Make ``tree`` a git tree with one commit (for Fixes: resolution)."""
    git(tree, "init", "-q")
    git(tree, "add", "-A")
    git(tree, "commit", "-q", "-m", "demo: the demo driver")


class SeriesWriter:
    """Commits in a scratch git copy of the tree's sources, exported with git format-patch."""

    def __init__(self, tree: Path, work: Path) -> None:
        self.repo = work / "repo"
        shutil.copytree(tree, self.repo, symlinks=True)
        git(self.repo, "init", "-q")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", "base")
        self.base = git(self.repo, "rev-parse", "HEAD").strip()

    def commit(self, subject: str, body: str, files: dict[str, str | None],
               trailers: str = f"Signed-off-by: {AUTHOR}") -> None:
        for rel, text in files.items():
            p = self.repo / rel
            if text is None:
                p.unlink()
                continue
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        git(self.repo, "add", "-A")
        msg = f"{subject}\n\n{body.strip()}\n" + (f"\n{trailers}\n" if trailers else "")
        git(self.repo, "commit", "-q", "-m", msg)

    def format_patch(self, out: Path, cover: bool = True) -> list[Path]:
        args = ["format-patch", "-q", "-o", str(out), "--no-base"]
        if cover:
            args.append("--cover-letter")
        git(self.repo, *args, f"{self.base}..HEAD")
        return sorted(out.glob("*.patch"))

    def read(self, rel: str) -> str:
        return (self.repo / rel).read_text()
