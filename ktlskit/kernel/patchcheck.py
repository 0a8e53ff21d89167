"""Pre-submission checks of a series: checkpatch --strict and per-patch builds.

The builds run in a separate copy of the tree (``trees/IDENT-check``) so the
main build is untouched: the series is applied one patch at a time and the
kernel rebuilt after each (incrementally), which is what bisectability needs.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from .. import paths
from ..errors import KtlskitError
from ..progress import say
from ..shell import cmd
from . import kconfig
from .build import make
from .series import Series, _sync, apply_one
from .source import KernelSource


@dataclass(frozen=True)
class CheckpatchResult:
    errors: int
    warnings: int
    checks: int
    output: str

    @property
    def clean(self) -> bool:
        return self.errors == self.warnings == self.checks == 0


@dataclass(frozen=True)
class PatchCheck:
    patch: str
    checkpatch: CheckpatchResult
    build: str  # "ok", "failed: ...", "skipped"

    @property
    def ok(self) -> bool:
        return self.checkpatch.clean and self.build in ("ok", "skipped")

    def row(self) -> tuple[object, ...]:
        cp = self.checkpatch
        return (self.patch, "clean" if cp.clean else "NOT clean", cp.errors, cp.warnings,
                cp.checks, self.build)

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        d["ok"] = self.ok
        return d


_TOTAL = re.compile(r"total: (\d+) errors?, (\d+) warnings?, (?:(\d+) checks?, )?\d+ lines")


def parse_checkpatch(output: str) -> CheckpatchResult:
    m = _TOTAL.search(output)
    if not m:
        raise KtlskitError(f"checkpatch printed no totals line:\n{output[-2000:]}")
    return CheckpatchResult(int(m[1]), int(m[2]), int(m[3] or 0), output)


def checkpatch(src: KernelSource, patch_text_path: str) -> CheckpatchResult:
    script = src.path / "scripts/checkpatch.pl"
    res = cmd(["perl", script, "--strict",
               "--show-types", patch_text_path], cwd=src.path, timeout=300, check=False)
    return parse_checkpatch(res.stdout + res.stderr)


def check_series(src: KernelSource, ser: Series, *, profile: str,
                 build: bool = True) -> list[PatchCheck]:
    if not ser.patches:
        raise KtlskitError(f"the series in {ser.root} is empty: nothing to check")
    tree = paths.cache_dir() / "trees" / f"{src.ident}-check"
    bdir = paths.cache_dir() / "build" / src.ident / f"{profile}-check"
    if build:
        _sync(src.path, tree, exclude=set())
        kconfig.configure(tree, bdir, kconfig.profile_fragments(profile))
    results = []
    for n, p in enumerate(ser.patches, 1):
        say(f"[{n}/{len(ser.patches)}] {p.name}")
        cp = checkpatch(src, str(p))
        status = "skipped"
        if build:
            try:
                apply_one(p, tree)
                make(tree, bdir, ["bzImage"], what=f"build after {p.name}")
                status = "ok"
            except KtlskitError as exc:
                status = f"failed: {str(exc).splitlines()[0]}"
                results.append(PatchCheck(p.name, cp, status))
                say(f"stopping: {p.name} does not build")
                break
        results.append(PatchCheck(p.name, cp, status))
    return results
