"""A W=1 build after each patch, reporting the warnings that are new (NIPA's build_*).

Each compiler has its own ``O=`` directory (``build/IDENT/PROFILE-check-gcc``,
``...-check-clang``), built incrementally patch after patch. ``make
--output-sync=target`` keeps each target's output together with its ``CC``
line, so every warning is filed under the unit that printed it; a ledger in
the build directory holds the latest warnings of every unit. The first build
of the series' base fills it (ccache replays cached warnings), later builds
replace the entries of the units they rebuilt, and a patch's new warnings are
the ledger after it minus the ledger before it, compared without line
numbers. A build that dies half way leaves the ledger marked incomplete and
the next run starts that directory again from scratch.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .. import paths
from ..errors import KtlskitError
from ..kernel import kconfig
from ..kernel.build import make
from ..kernel.source import KernelSource
from ..progress import say
from . import toolchain
from .model import Check, Outcome, PatchContext, cannot_run, failed, new_since, passed

BUILD_TIMEOUT = 45 * 60
LEDGER = "ktlskit-warnings.json"
_STEP = re.compile(r"^  (?P<step>[A-Z][A-Z0-9_-]*)\s+(?P<target>\S+)\s*$")
_DIAG = re.compile(r"\b(?:warning|error)\b\s*:", re.I)
_LOC = re.compile(r":\d+(?::\d+)?:")
_OFFSET = re.compile(r"[+/]0x[0-9a-f]+", re.I)


@dataclass
class Ledger:
    """Latest warnings per build unit (``CC drivers/x.o``, ``LD vmlinux.o``, ...)."""

    units: dict[str, list[str]] = field(default_factory=dict)
    complete: bool = False

    def all(self) -> list[str]:
        return [w for unit in sorted(self.units) for w in self.units[unit]]

    @classmethod
    def load(cls, bdir: Path) -> Ledger | None:
        f = bdir / LEDGER
        if not f.is_file():
            return None
        d = json.loads(f.read_text())
        return cls(d["units"], d["complete"])

    def save(self, bdir: Path) -> None:
        (bdir / LEDGER).write_text(json.dumps({"complete": self.complete, "units": self.units}))

    def prune(self, tree: Path) -> None:
        """Forget compiled units whose source file is gone (a file the series had added)."""
        for unit in list(self.units):
            step, _, target = unit.partition(" ")
            if step in ("CC", "AS") and target.endswith(".o"):
                ext = ".c" if step == "CC" else ".S"
                if not (tree / (target[:-2] + ext)).exists():
                    del self.units[unit]


class OutputSplitter:
    """Files each diagnostic line of a synced make output under the step it follows."""

    def __init__(self, strip: list[str]) -> None:
        self.unit = "(make)"
        self.units: dict[str, list[str]] = {self.unit: []}
        self.strip = strip

    def feed(self, line: str) -> None:
        m = _STEP.match(line)
        if m:
            self.unit = f"{m['step']} {m['target']}"
            self.units.setdefault(self.unit, [])
            return
        if _DIAG.search(line) and not line.startswith("make"):
            clean = line.strip()
            for prefix in self.strip:
                clean = clean.replace(prefix, "")
            self.units.setdefault(self.unit, []).append(clean)


def normalize(warning: str) -> str:
    return _OFFSET.sub("", _LOC.sub(":", re.sub(r"^(\.\./)+", "", warning)))


class BuildWarnings(Check):
    """One compiler's W=1 build after each patch."""

    needs_tree = True

    def __init__(self, compiler: str, tc: toolchain.Toolchain | toolchain.Unavailable,
                 profile: str, blocked: str = "") -> None:
        self.name = f"build_{compiler}"
        self.tc = tc
        self.profile = profile
        self.blocked = blocked or (tc.why if isinstance(tc, toolchain.Unavailable) else "")
        self.bdir: Path | None = None
        self.tree: Path | None = None
        self.ledger = Ledger()

    def prepare(self, src: KernelSource, tree: Path) -> None:
        """Configure and build the series' base; the reference for "new"."""
        if self.blocked or not isinstance(self.tc, toolchain.Toolchain):
            return
        self.tree = tree
        self.bdir = (paths.cache_dir() / "build" / src.ident
                     / f"{self.profile}-check-{self.tc.name}")
        ledger = Ledger.load(self.bdir)
        if ledger is None or not ledger.complete:
            if self.bdir.exists():
                say(f"{self.name}: no complete warnings ledger in {self.bdir}; starting it anew")
                shutil.rmtree(self.bdir)
            ledger = Ledger()
        self.ledger = ledger
        kconfig.configure(tree, self.bdir, kconfig.profile_fragments(self.profile),
                          self.tc.make_vars)
        say(f"{self.name}: building the series' base ({self.tc.version}, W=1) in {self.bdir}")
        err = self._build("base")
        if err:
            self.blocked = f"the series' base does not build with {self.tc.name}: {err}"

    def _build(self, what: str) -> str | None:
        """Build bzImage with W=1; update the ledger; the error line on failure."""
        assert self.bdir is not None and self.tree is not None
        assert isinstance(self.tc, toolchain.Toolchain)
        split = OutputSplitter([f"{self.tree}/", f"{self.bdir}/"])
        self.ledger.complete = False
        self.ledger.save(self.bdir)
        error = None
        try:
            make(self.tree, self.bdir, ["W=1", "--output-sync=target", "bzImage"],
                 what=f"{self.name} {what}", timeout=BUILD_TIMEOUT,
                 make_vars=self.tc.make_vars, on_line=split.feed)
        except KtlskitError as exc:
            error = str(exc)
        self.ledger.units.update(split.units)
        self.ledger.prune(self.tree)
        self.ledger.complete = True
        self.ledger.save(self.bdir)
        return error

    def run(self, ctx: PatchContext) -> Outcome:
        if self.blocked:
            return cannot_run(self.blocked)
        before = self.ledger.all()
        err = self._build(f"after {ctx.patch.short}")
        after = self.ledger.all()
        fresh = new_since(before, after, normalize)
        summary = f"W=1 warnings before: {len(before)} after: {len(after)}"
        if err:
            tail = [ln for ln in err.splitlines()[1:] if _DIAG.search(ln)] or \
                err.splitlines()[-5:]
            return failed(f"does not build with {self.tc.name}: {err.splitlines()[0]}",
                          fresh or tail, err)
        if fresh:
            return failed(f"{summary} (new: {len(fresh)})", fresh)
        return passed(summary)
