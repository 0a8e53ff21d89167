from pathlib import Path

from ktlskit import ktap
from ktlskit.kselftest import KselftestRun, timed_out

FIXTURES = Path(__file__).parent / "fixtures"

NESTED = """\
KTAP version 1
1..2
  KTAP version 1
  # Subtest: suite_a
  1..3
  ok 1 case_one
  not ok 2 case_two
  ok 3 case_three # SKIP needs hardware
not ok 1 suite_a
ok 2 suite_b # SKIP not built
"""


def test_nested_ktap_counts_the_leaves() -> None:
    rep = ktap.parse(NESTED)
    leaves = rep.leaf_results()
    assert [(r.name, r.status) for r in leaves] == [
        ("case_one", "pass"), ("case_two", "fail"), ("case_three", "skip")]
    assert leaves[2].reason == "needs hardware"
    assert not rep.ok


def test_incomplete_plan_is_not_ok() -> None:
    rep = ktap.parse("TAP version 13\n1..3\nok 1 a\nok 2 b\n")
    assert rep.counts()["pass"] == 2
    assert not rep.ok, "a crashed test that printed 2 of 3 results must not pass"


def test_no_results_is_not_ok() -> None:
    assert not ktap.parse("TAP version 13\n1..0\n").ok


def test_xfail_and_dash_names() -> None:
    rep = ktap.parse("1..2\nok 1 - first # XFAIL known bug\nok 2 - second\n")
    assert [r.status for r in rep.results] == ["xfail", "pass"]
    assert rep.results[1].name == "second"
    assert rep.ok


def test_write_round_trips() -> None:
    results = [ktap.TestResult(1, "t::a", "pass"), ktap.TestResult(2, "t::b", "fail"),
               ktap.TestResult(3, "t::c", "skip", "no netdevsim")]
    text = ktap.write("suite", results)
    assert text.startswith("KTAP version 1\n")
    back = ktap.parse(text)
    assert [(r.name, r.status, r.reason) for r in back.results] == [
        ("t::a", "pass", ""), ("t::b", "fail", ""), ("t::c", "skip", "no netdevsim")]


def test_real_net_tls_selftest_output() -> None:
    # 7.3.4 under TCG on a loaded 2-core host: 8 multi-process cases of the slow
    # generic ARIA/SM4 ciphers hit the harness's 30 s per-case timeout.
    text = (FIXTURES / "kselftest-net-tls.txt").read_text()
    rep = ktap.parse(text)
    counts = rep.counts()
    assert rep.plans[0] == len(rep.leaf_results()) == 927
    assert (counts["pass"], counts["fail"]) == (919, 8)
    failed = [r.name for r in rep.leaf_results() if r.status == "fail"]
    assert failed[0] == "tls.13_sm4_ccm.mutliproc_readers"
    assert all("mutliproc" in n for n in failed)
    assert rep.totals_line.startswith("# Totals: pass:919 fail:8")
    assert not rep.ok


def test_timeouts_are_found_and_a_passing_retry_clears_them() -> None:
    text = (FIXTURES / "kselftest-net-tls.txt").read_text()
    names = timed_out(text)
    assert len(names) == 8 and all(".mutliproc_" in n for n in names), names
    report = ktap.parse(text)
    run = KselftestRun("net/tls", report, text, 1, 1.0)
    assert not run.ok and sorted(run.failed()) == sorted(names)
    partly = KselftestRun("net/tls", report, text, 1, 1.0,
                          dict.fromkeys(names, "pass") | {names[0]: "fail"})
    assert not partly.ok and partly.failed() == [names[0]]
    cleared = KselftestRun("net/tls", report, text, 1, 1.0, dict.fromkeys(names, "pass"))
    assert cleared.ok and cleared.failed() == []
