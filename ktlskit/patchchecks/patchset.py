"""The patches to check: a quilt ``series`` file or a directory of format-patch files.

A series file (``patches/series`` by default) lists patches in apply order;
consecutive patches from one directory form one posted series, whose cover
letter is that directory's ``0000-*.patch`` (not listed in the series file).
A directory is one series: its ``*.patch`` files in name order, the
``[PATCH 0/N]`` one being the cover letter.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

from .. import paths
from ..errors import KtlskitError
from ..kernel import series as quilt
from . import patchfile
from .model import SeriesGroup
from .patchfile import PatchFile


class PatchSetError(KtlskitError):
    """The patches to check cannot be found or read."""


@dataclass(frozen=True)
class PatchSet:
    root: Path  # patch names are relative to it; waivers.toml is looked up here
    groups: tuple[SeriesGroup, ...]
    source: Path  # the series file or directory given

    @property
    def patches(self) -> list[PatchFile]:
        return [p for g in self.groups for p in g.patches]

    def quilt(self) -> quilt.Series:
        return quilt.Series(self.root, tuple(p.path for p in self.patches))


def load(path: Path | None = None) -> PatchSet:
    target = (path or paths.project_dir() / "patches" / "series").resolve()
    if target.is_dir():
        return _from_directory(target)
    if not target.is_file():
        raise PatchSetError(f"{target}: no such series file or directory")
    return _from_series_file(target)


def _rel(p: Path, root: Path) -> str:
    try:
        return str(p.relative_to(root))
    except ValueError:
        return str(p)


def _from_series_file(sf: Path) -> PatchSet:
    ser = quilt.load(sf)
    if not ser.patches:
        raise PatchSetError(f"{sf} lists no patches: nothing to check")
    groups = []
    for parent, paths_ in groupby(ser.patches, key=lambda p: p.parent):
        patches = tuple(patchfile.parse(p, _rel(p, ser.root)) for p in paths_)
        covers = [patchfile.parse(c, _rel(c, ser.root)) for c in sorted(parent.glob("0000-*.patch"))
                  if c not in ser.patches]
        cover = next((c for c in covers if c.is_cover), None)
        groups.append(SeriesGroup(_rel(parent, ser.root) if parent != ser.root else parent.name,
                                  cover, patches))
    return PatchSet(ser.root, tuple(groups), sf)


def _from_directory(d: Path) -> PatchSet:
    files = sorted(d.glob("*.patch"))
    if not files:
        raise PatchSetError(f"{d} holds no *.patch files: nothing to check")
    parsed = [patchfile.parse(f, f.name) for f in files]
    covers = [p for p in parsed if p.is_cover]
    if len(covers) > 1:
        raise PatchSetError(f"{d} holds {len(covers)} cover letters: "
                            + ", ".join(c.name for c in covers))
    patches = tuple(p for p in parsed if not p.is_cover)
    if not patches:
        raise PatchSetError(f"{d} holds only a cover letter")
    return PatchSet(d, (SeriesGroup(d.name, covers[0] if covers else None, patches),), d)
