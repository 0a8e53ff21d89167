"""Runs every check on every patch, walking a copy of the tree through the series.

Order per patch: the tree checks' ``before`` hooks (tree at the state before
the patch), ``patch -p1``, then every check's ``run``. A patch that does not
apply stops the walk: the tree checks of it and of every later patch report
cannot-run, the message checks still run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from ..errors import KtlskitError
from ..kernel.series import apply_one
from ..kernel.source import KernelSource
from ..progress import say
from . import checktree, toolchain, waivers
from .buildwarn import BuildWarnings
from .checkpatch import Checkpatch
from .deprecated import DeprecatedApi
from .fixes import FixesTagCheck
from .inline import HeaderInline, SourceInline
from .kdoc import Kdoc
from .maintainers import Maintainers
from .model import Check, Outcome, PatchContext, SeriesGroup, cannot_run, failed, passed
from .patchfile import PatchFile
from .patchset import PatchSet
from .selftest import SelftestWiring
from .seriescheck import SERIES_CHECKS
from .signoff import SignedOffBy

APPLY = "apply"
PATCH_CHECKS = (APPLY, "checkpatch", "build_gcc", "build_clang", "kdoc", "signed_off_by",
                "fixes_tag", "source_inline", "header_inline", "deprecated_api", "selftest",
                "maintainers")
ALL_CHECKS = frozenset(PATCH_CHECKS) | frozenset(SERIES_CHECKS)


@dataclass(frozen=True)
class CheckOptions:
    profile: str = "default"
    build: bool = True
    clang: bool = True
    waiver_file: Path | None = None  # default: waivers.toml in the series' root


@dataclass(frozen=True)
class Result:
    check: str
    subject: str  # the patch name, or "series:NAME"
    waived: waivers.Waived
    seconds: float

    @property
    def status(self) -> str:
        return self.waived.status.value


@dataclass
class PatchReport:
    patch: PatchFile
    results: dict[str, Result] = field(default_factory=dict)


@dataclass
class GroupReport:
    group: SeriesGroup
    series: dict[str, Result] = field(default_factory=dict)
    patches: list[PatchReport] = field(default_factory=list)


@dataclass
class Report:
    src: KernelSource
    patchset: PatchSet
    waiver_file: Path | None
    waivers: list[waivers.Waiver]
    groups: list[GroupReport] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # per check, all patches
    wall: float = 0.0

    def results(self) -> list[Result]:
        out = []
        for g in self.groups:
            out += g.series.values()
            for p in g.patches:
                out += p.results.values()
        return out

    @property
    def ok(self) -> bool:
        return all(r.status != "fail" for r in self.results())


def make_checks(src: KernelSource, opts: CheckOptions) -> list[Check]:
    no_build = "not built: --no-build" if not opts.build else ""
    clang_tc = toolchain.clang(src.path)
    return [
        Checkpatch(),
        BuildWarnings("gcc", toolchain.gcc(), opts.profile, no_build),
        BuildWarnings("clang", clang_tc, opts.profile,
                      no_build or ("not built: --no-clang" if not opts.clang else "")),
        Kdoc(), SignedOffBy(), FixesTagCheck(), SourceInline(), HeaderInline(),
        DeprecatedApi(), SelftestWiring(), Maintainers(),
    ]


def run(src: KernelSource, ps: PatchSet, opts: CheckOptions) -> Report:
    start = time.monotonic()
    wfile = opts.waiver_file or ps.root / "waivers.toml"
    report = Report(src, ps, wfile if wfile.is_file() else None,
                    waivers.load(wfile if wfile.is_file() else None, set(ALL_CHECKS)))
    if opts.waiver_file and not opts.waiver_file.is_file():
        raise KtlskitError(f"--waivers {opts.waiver_file}: no such file")
    checks = make_checks(src, opts)
    timed = _Timer(report.seconds)
    for g in ps.groups:
        gr = GroupReport(g)
        for name, fn in SERIES_CHECKS.items():
            gr.series[name] = timed.result(report, name, f"series:{g.name}", partial(fn, g))
        report.groups.append(gr)
    tree = timed.call("tree_copy", partial(checktree.reset, src, ps.quilt().touched_files()))
    assert isinstance(tree, Path)
    for c in checks:
        timed.call(c.name, partial(c.prepare, src, tree))
    _walk(report, checks, tree, timed)
    report.wall = round(time.monotonic() - start, 1)
    return report


def _walk(report: Report, checks: list[Check], tree: Path, timed: _Timer) -> None:
    total = len(report.patchset.patches)
    n = 0
    broken = ""
    for gr in report.groups:
        for patch in gr.group.patches:
            n += 1
            ctx = PatchContext(patch, n, gr.group, report.src, None if broken else tree)
            pr = PatchReport(patch)
            if not broken:
                for c in checks:
                    if c.needs_tree:
                        timed.call(c.name, partial(c.before, ctx))
            pr.results[APPLY] = timed.result(report, APPLY, patch.name,
                                             partial(_apply, patch, tree, broken))
            if pr.results[APPLY].status != "pass" and not broken:
                broken = f"{patch.name} did not apply"
                ctx.tree = None
            for c in checks:
                why = broken if c.needs_tree and ctx.tree is None else ""
                fn = partial(cannot_run, why) if why else partial(c.run, ctx)
                pr.results[c.name] = timed.result(report, c.name, patch.name, fn)
            gr.patches.append(pr)
            summary = ", ".join(f"{k} {r.status}" for k, r in pr.results.items()
                                if r.status != "pass")
            say(f"[{n}/{total}] {patch.short}: {summary or 'all pass'}")


def _apply(patch: PatchFile, tree: Path, broken: str) -> Outcome:
    if broken:
        return cannot_run(f"not applied: {broken}")
    try:
        apply_one(patch.path, tree)
    except KtlskitError as exc:
        return failed("does not apply", [str(exc).splitlines()[0]], str(exc))
    return passed("applies with patch -p1")


class _Timer:
    def __init__(self, seconds: dict[str, float]) -> None:
        self.seconds = seconds

    def call(self, name: str, fn: Callable[[], object]) -> object:
        start = time.monotonic()
        try:
            return fn()
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.monotonic() - start, 2)

    def result(self, report: Report, check: str, subject: str,
               fn: Callable[[], Outcome]) -> Result:
        start = time.monotonic()
        outcome = self.call(check, fn)
        assert isinstance(outcome, Outcome)
        return Result(check, subject, waivers.apply(report.waivers, subject, check, outcome),
                      round(time.monotonic() - start, 2))
