"""One kselftest harness program run as N concurrent shards in the guest, one per vCPU.

The harness runs its cases one after another, and most of net/tls's cases keep one vCPU busy:
under TCG the guest's other vCPU (and the host core behind it) idles for the whole run. The
harness lists its fixtures, variants and tests (``-l``); every case is named
``FIXTURE.VARIANT.TEST`` (``FIXTURE.TEST`` without variants) and dealt to the shards in turn,
so the slow variants (generic ARIA, SM4) are spread over all of them; each shard runs its cases
with ``-r``. The shards' KTAP outputs are merged: every listed case must have exactly one
result, or the run is an error, not a pass.
"""

from __future__ import annotations

import shlex
from collections import Counter

from . import ktap
from .errors import KtlskitError
from .hosts import Host, HostResult

KSFT_SKIP = 4


class ShardError(KtlskitError):
    """The harness's case list could not be read, or the shards did not run every case."""


def parse_listing(text: str) -> list[str]:
    """The case names from ``PROGRAM -l`` (columns FIXTURE, VARIANT, TEST; a fixture's first
    line names it, its variants and tests continue on the lines below, until a dashed line)."""
    cases: list[str] = []
    fixture, variants, tests = "", [], []

    def flush() -> None:
        for v in variants or [""]:
            cases.extend(f"{fixture}.{v}.{t}" if v else f"{fixture}.{t}" for t in tests)

    for line in text.splitlines():
        if line.startswith("# FIXTURE") or not line.strip():
            continue
        if line.startswith("-----"):
            flush()
            fixture, variants, tests = "", [], []
            continue
        name, variant, test = line[:20].strip(), line[21:46].strip(), line[47:].strip()
        if name:
            fixture = name
        if variant:
            variants.append(variant)
        if test:
            tests.append(test)
    flush()
    return cases


def list_cases(guest: Host, argv: list[str]) -> list[str]:
    res = guest.run(f"cd /tmp && {shlex.join([*argv, '-l'])} 2>&1", timeout=120, check=False)
    cases = parse_listing(res.stdout)
    if res.rc not in (0, KSFT_SKIP) or not cases:  # the harness exits KSFT_SKIP after -l
        raise ShardError(f"{argv[0]} -l listed no cases (exit {res.rc}):\n{res.stdout[-2000:]}")
    return cases


def shard_argvs(argv: list[str], cases: list[str], shards: int) -> list[list[str]]:
    """``argv -r CASE ...`` for each shard; case i goes to shard i mod ``shards``."""
    out = []
    for k in range(min(shards, len(cases))):
        out.append([*argv, *(w for case in cases[k::shards] for w in ("-r", case))])
    return out


def run_shards(guest: Host, workdir: str, argvs: list[list[str]],
               timeout: float) -> list[HostResult]:
    """All shards at once, each its own process; every one is waited for (or killed)."""
    procs = [guest.spawn(f"cd {shlex.quote(workdir)} && {shlex.join(a)} 2>&1", timeout=timeout)
             for a in argvs]
    try:
        return [p.wait(timeout + 60, check=False) for p in procs]
    finally:
        for p in procs:
            if p.running():
                p.kill()


def merge(cases: list[str], results: list[HostResult]) -> tuple[str, ktap.KtapReport, int]:
    """(the shards' outputs one after another, their results as one report planned for every
    listed case, the exit status: the first non-zero). A case with no result leaves the report
    incomplete (not ok); a result for a case not listed, or two for one, is a ShardError."""
    text = "".join(f"# ktlskit: shard {k + 1} of {len(results)}\n{r.stdout}"
                   for k, r in enumerate(results))
    merged = ktap.KtapReport(plans={0: len(cases)})
    for r in results:
        rep = ktap.parse(r.stdout)
        merged.results.extend(rep.leaf_results())
        merged.totals_line = " / ".join(filter(None, [merged.totals_line, rep.totals_line]))
    seen, listed = Counter(r.name for r in merged.results), set(cases)
    stray = sorted(n for n in seen if n not in listed)
    twice = sorted(n for n, k in seen.items() if k > 1)
    if stray or twice:
        raise ShardError(f"the shards' results do not match the {len(cases)} listed cases: "
                         f"not listed {stray[:10]}, more than once {twice[:10]}")
    rc = next((r.rc for r in results if r.rc), 0)
    return text, merged, rc
