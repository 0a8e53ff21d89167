"""A harness program in shards: its cases listed, dealt and merged (the 7.3 net/tls harness's
own ``-l`` listing and a recorded run of it in a guest), and a real harness run in shards."""

from __future__ import annotations

from pathlib import Path

import pytest

from ktlskit import ktap
from ktlskit.hosts import HostResult
from ktlskit.hosts.local import LocalHost
from ktlskit.kselftest_shard import ShardError, merge, parse_listing, run_shards, shard_argvs

FIXTURES = Path(__file__).parent / "fixtures"
LISTING = (FIXTURES / "kselftest-net-tls-list.txt").read_text()
RECORDED = ktap.parse((FIXTURES / "kselftest-net-tls.txt").read_text())  # before 0002


def _cases_of(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, w in enumerate(argv) if w == "-r"]


def test_the_listing_names_every_case_as_the_harness_reports_it() -> None:
    cases = parse_listing(LISTING)
    assert len(cases) == len(set(cases)) == 940
    recorded = {r.name for r in RECORDED.leaf_results()}
    assert recorded <= set(cases)
    # the only cases the recorded run lacks are the ones tls-fixes/0002 adds
    assert {c.rsplit(".", 1)[1] for c in set(cases) - recorded} == {"rekey_poll_queued"}
    assert "global.keysizes" in cases and "tls.12_aria_gcm.mutliproc_even" in cases


def test_cases_are_dealt_in_turn_so_slow_variants_are_spread() -> None:
    cases = parse_listing(LISTING)
    argvs = shard_argvs(["/x/tls"], cases, 2)
    dealt = [_cases_of(a) for a in argvs]
    assert all(a[0] == "/x/tls" for a in argvs)
    assert sorted(dealt[0] + dealt[1]) == sorted(cases)
    assert abs(len(dealt[0]) - len(dealt[1])) <= 1
    for shard in dealt:
        aria = [c for c in shard if ".12_aria_gcm." in c]
        assert len(aria) > 15, len(aria)  # about half of the variant's cases in each
    assert len(shard_argvs(["/x/tls"], cases[:1], 4)) == 1  # never an empty shard


def _shard_output(results: list[ktap.TestResult]) -> HostResult:
    return HostResult("tls -r ...", 0, ktap.write("net/tls", results), "")


def test_merged_shards_report_every_case_once() -> None:
    leaves = RECORDED.leaf_results()
    cases = [r.name for r in leaves]
    text, report, rc = merge(cases, [_shard_output(leaves[0::2]), _shard_output(leaves[1::2])])
    assert rc == 0 and report.complete and report.ok == RECORDED.ok
    assert report.counts() == RECORDED.counts()
    assert "# ktlskit: shard 2 of 2" in text


def test_a_case_without_result_leaves_the_run_incomplete() -> None:
    leaves = RECORDED.leaf_results()
    cases = [r.name for r in leaves]
    _, report, _ = merge(cases, [_shard_output(leaves[0::2]), _shard_output(leaves[1::2][:-1])])
    assert not report.complete and not report.ok


def test_a_result_twice_or_unlisted_is_an_error() -> None:
    leaves = RECORDED.leaf_results()
    cases = [r.name for r in leaves]
    with pytest.raises(ShardError, match="more than once"):
        merge(cases, [_shard_output(leaves), _shard_output(leaves[:1])])
    with pytest.raises(ShardError, match="not listed"):
        merge(cases[1:], [_shard_output(leaves)])


def _built_tls() -> Path | None:
    from ktlskit import paths

    found = sorted((paths.cache_dir() / "build").glob("*/default/kselftest/net/tls"))
    return found[0] if found else None


@pytest.mark.skipif(_built_tls() is None, reason="no net/tls selftest built in the cache yet")
def test_a_real_harness_run_in_shards_gives_each_case_one_result() -> None:
    """This host has no kTLS: the harness's first two fixtures skip or run over plain TCP,
    which is enough to see that ``-r`` selects exactly the dealt cases."""
    prog = str(_built_tls())
    host = LocalHost()
    try:
        listing = host.run(f"{prog} -l 2>&1", timeout=30, check=False).stdout
        cases = [c for c in parse_listing(listing) if c.startswith(("global.", "tls_basic."))]
        results = run_shards(host, "/tmp", shard_argvs([prog], cases, 2), timeout=60)
    finally:
        host.close()
    _, report, rc = merge(cases, results)
    assert rc == 0 and report.complete, [r.stdout[-500:] for r in results]
    assert sorted(r.name for r in report.leaf_results()) == sorted(cases)
    # dealt evenly: each shard ran half of the cases, one more in some when odd
    half = len(cases) // 2
    assert all(len(ktap.parse(r.stdout).leaf_results()) in (half, len(cases) - half)
               for r in results)

