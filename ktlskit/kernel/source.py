"""Kernel source trees: Debian's linux-source package, a user's tree, or a tarball.

The pristine source is never modified: patches go into a copy (see
``series.py``). The user's choice is remembered per project in
``.ktlskit.json`` next to ``kconfig/``.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tarfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import paths
from ..errors import KtlskitError
from ..progress import say, step
from ..shell import cmd
from .aptmirror import debian_archive, system_entries

DEFAULT_PACKAGE = "linux-source-7.3"
DEFAULT_SUITE = "trixie-backports"
CONFIG_FILE = ".ktlskit.json"


class KernelSourceError(KtlskitError):
    """The kernel source could not be fetched, found or unpacked."""


@dataclass(frozen=True)
class KernelSource:
    """Where a pristine kernel tree is and what it is."""

    kind: str  # "debian", "tree" or "tarball"
    path: Path  # the unpacked tree
    ident: str  # stable name used for caches (no slashes)
    version: str  # kernel version from its Makefile

    def describe(self) -> str:
        return f"{self.kind}:{self.ident} (Linux {self.version}) at {self.path}"


def kernel_version(tree: Path) -> str:
    """``VERSION.PATCHLEVEL.SUBLEVEL`` read from the tree's top Makefile."""
    mk = tree / "Makefile"
    if not mk.is_file():
        raise KernelSourceError(f"{tree} is not a kernel tree (no Makefile)")
    vals = dict(re.findall(r"^(VERSION|PATCHLEVEL|SUBLEVEL|EXTRAVERSION)[ \t]*=[ \t]*(\S*)",
                           mk.read_text(errors="replace"), re.M))
    if "VERSION" not in vals:
        raise KernelSourceError(f"{mk} has no VERSION line; not a kernel tree")
    return (f"{vals['VERSION']}.{vals.get('PATCHLEVEL', '0')}.{vals.get('SUBLEVEL', '0')}"
            f"{vals.get('EXTRAVERSION', '')}")


# ---- the per-project choice -------------------------------------------------

def remembered(project: Path | None = None) -> dict[str, str] | None:
    f = (project or paths.project_dir()) / CONFIG_FILE
    if not f.is_file():
        return None
    data = json.loads(f.read_text())
    return data.get("kernel_src")


def remember(kind: str, location: str, project: Path | None = None) -> None:
    f = (project or paths.project_dir()) / CONFIG_FILE
    data = json.loads(f.read_text()) if f.is_file() else {}
    data["kernel_src"] = {"kind": kind, "location": location}
    f.write_text(json.dumps(data, indent=2) + "\n")


def resolve(kernel_src: str | None = None, *, fetch: bool = True) -> KernelSource:
    """The source to use: an explicit path, the remembered one, or the default.

    An explicit ``kernel_src`` is remembered for the project. ``"debian"``
    selects the default Debian package again.
    """
    if kernel_src and kernel_src != "debian":
        src = _from_path(Path(kernel_src).expanduser().resolve())
        remember(src.kind, str(Path(kernel_src).expanduser().resolve()))
        return src
    if kernel_src == "debian":
        remember("debian", DEFAULT_PACKAGE)
    else:
        choice = remembered()
        if choice and choice["kind"] != "debian":
            return _from_path(Path(choice["location"]))
    return fetch_debian() if fetch else _debian_cached()


def _from_path(p: Path) -> KernelSource:
    check_path(p)
    if p.is_dir():
        return tree_source(p)
    return unpack_tarball(p)


def tree_source(p: Path) -> KernelSource:
    """A user's kernel tree, used in place (never modified)."""
    h = hashlib.sha256(str(p).encode()).hexdigest()[:10]
    return KernelSource("tree", p, f"tree-{p.name}-{h}", kernel_version(p))


def check_path(p: Path, budget: float = 0.5) -> None:
    """Fail fast, naming the cause, when ``p`` is neither a kernel tree nor a kernel tarball.

    A tree needs a top Makefile with a VERSION line. A tarball is skimmed for at most
    ``budget`` seconds: it must hold kernel top-level files (Makefile, Kconfig, COPYING,
    MAINTAINERS) under one directory; one whose skim ends before deciding is taken and checked
    again once unpacked.
    """
    if not p.exists():
        raise KernelSourceError(f"--kernel-src {p}: no such file or directory")
    if p.is_dir():
        kernel_version(p)
        return
    if not (p.is_file() and tarfile.is_tarfile(p)):
        raise KernelSourceError(f"--kernel-src {p}: neither a kernel tree (a directory with the "
                                "kernel's Makefile) nor a tarball")
    if _tarball_verdict(p, budget) is False:
        raise KernelSourceError(f"--kernel-src {p}: a tarball, but not of a kernel tree (no "
                                f"top-level {', '.join(KERNEL_TOP_FILES)} in it)")


KERNEL_TOP_FILES = ("Makefile", "Kconfig", "COPYING", "MAINTAINERS")


def _tarball_verdict(p: Path, budget: float) -> bool | None:
    """True: kernel top-level files seen; False: the archive ended without them; None: the
    skim ran out of time first."""
    deadline = time.monotonic() + budget
    with tarfile.open(p) as tar:
        for member in tar:
            parts = member.name.lstrip("./").split("/")
            if len(parts) <= 2 and parts[-1] in KERNEL_TOP_FILES:
                return True
            if time.monotonic() > deadline:
                return None
    return False


# ---- tarballs ---------------------------------------------------------------

def unpack_tarball(tarball: Path, dest_root: Path | None = None) -> KernelSource:
    """Unpack ``tarball`` once into the cache; the tree is its single top directory."""
    digest = _file_digest(tarball)[:12]
    dest = (dest_root or paths.cache_dir() / "src") / f"tarball-{digest}"
    if not (dest / ".unpacked").exists():
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        with step(f"unpacking {tarball.name}"):
            cmd(["tar", "-xf", tarball, "-C", dest], timeout=1800)
        (dest / ".unpacked").write_text(str(tarball) + "\n")
    tree = _single_tree(dest)
    return KernelSource("tarball", tree, f"tarball-{digest}", kernel_version(tree))


def _single_tree(dest: Path) -> Path:
    dirs = [d for d in dest.iterdir() if d.is_dir()]
    if len(dirs) == 1 and (dirs[0] / "Makefile").is_file():
        return dirs[0]
    if (dest / "Makefile").is_file():
        return dest
    raise KernelSourceError(f"{dest}: the tarball did not hold one kernel tree")


def _file_digest(p: Path) -> str:
    h = hashlib.sha256()
    with p.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---- Debian's linux-source package -------------------------------------------

@dataclass(frozen=True)
class AptState:
    """A private apt configuration: nothing under /var/lib/apt or /etc/apt changes."""

    root: Path

    def options(self) -> list[str]:
        r = self.root
        return [
            f"-oDir::State={r / 'state'}", f"-oDir::State::Lists={r / 'lists'}",
            f"-oDir::State::status={r / 'status'}", f"-oDir::Cache={r / 'cache'}",
            f"-oDir::Etc::SourceList={r / 'sources.list'}", "-oDir::Etc::SourceParts=/dev/null",
            "-oAPT::Sandbox::User=root", "-oAcquire::Retries=3",
        ]

    def prepare(self) -> None:
        for d in ("state", "lists/partial", "cache/archives/partial", "debs"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        (self.root / "status").touch()
        entry = debian_archive(system_entries())
        signed = f" [signed-by={entry.signed_by}]" if entry.signed_by else ""
        (self.root / "sources.list").write_text(
            f"deb{signed} {entry.uri} {DEFAULT_SUITE} main\n")


def _debian_dir() -> Path:
    return paths.cache_dir() / "src" / "debian"


def _debian_cached() -> KernelSource:
    stamp = _debian_dir() / "source.json"
    if not stamp.is_file():
        raise KernelSourceError("the default kernel is not fetched yet: run `ktlskit kernel fetch`")
    meta = json.loads(stamp.read_text())
    tree = Path(meta["path"])
    return KernelSource("debian", tree, meta["ident"], kernel_version(tree))


def fetched_default_tree() -> Path | None:
    """The default (Debian) kernel tree in this cache if it is fetched, else None (no fetch)."""
    try:
        return _debian_cached().path
    except KernelSourceError:
        return None


def fetch_debian(package: str = DEFAULT_PACKAGE) -> KernelSource:
    """Download and unpack Debian's ``linux-source-X.Y`` once; later calls reuse it."""
    try:
        return _debian_cached()
    except KernelSourceError:
        pass
    apt = AptState(paths.cache_dir() / "apt")
    apt.prepare()
    with step(f"apt-get update ({DEFAULT_SUITE}, private state in {apt.root})"):
        cmd(["apt-get", *apt.options(), "-q", "update"], timeout=600)
    debs = apt.root / "debs"
    for old in debs.glob("*.deb"):
        old.unlink()
    with step(f"downloading {package}"):
        cmd(["apt-get", *apt.options(), "-q", "download", package], cwd=debs, timeout=1800)
    deb = next(debs.glob(f"{package}_*.deb"), None)
    if deb is None:
        raise KernelSourceError(f"apt-get download {package} produced no .deb in {debs}")
    return _unpack_deb(deb, package)


def _unpack_deb(deb: Path, package: str) -> KernelSource:
    pkg_version = deb.name.split("_")[1].replace("%7e", "~").replace("%2b", "+")
    ident = f"debian-{package}-{pkg_version}".replace("~", "_").replace("+", "_")
    dest = _debian_dir()
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    with step(f"unpacking {deb.name} into {dest}"):
        _extract_source_tarball(deb, package, dest)
    tree = dest / package
    if not (tree / "Makefile").is_file():
        raise KernelSourceError(f"{deb.name} did not contain usr/src/{package}.tar.xz")
    meta = {"path": str(tree), "ident": ident, "package": package, "version": pkg_version}
    (dest / "source.json").write_text(json.dumps(meta, indent=2) + "\n")
    say(f"kernel source: {ident} (Linux {kernel_version(tree)})")
    return KernelSource("debian", tree, ident, kernel_version(tree))


def _extract_source_tarball(deb: Path, package: str, dest: Path) -> None:
    """dpkg-deb | tar: pull usr/src/PACKAGE.tar.xz out of the .deb and unpack it."""
    member = f"./usr/src/{package}.tar.xz"
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)],
                          stdout=subprocess.PIPE) as fsys, \
         subprocess.Popen(["tar", "-xO", member], stdin=fsys.stdout,
                          stdout=subprocess.PIPE) as inner:
        assert fsys.stdout is not None
        fsys.stdout.close()
        res = subprocess.run(["tar", "-xJ", "-C", str(dest)], stdin=inner.stdout,
                             capture_output=True, text=True, timeout=1800, check=False)
    if fsys.returncode or inner.returncode or res.returncode:
        raise KernelSourceError(f"unpacking {deb.name} failed: {res.stderr.strip()}")


def source_info(src: KernelSource) -> dict[str, str]:
    d = asdict(src)
    d["path"] = str(src.path)
    return d
