"""``patches check`` end to end on the small real tree: each broken patch is caught by its check.

One series, clean patch first, then one patch per defect; a waiver accepts
checkpatch's MAINTAINERS question for the new selftest file. The builds are
real (gcc, and clang when installed) on the fixture tree.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from minikernel import AUTHOR, SeriesWriter, kernel_source, make_tree

from ktlskit.kernel.source import KernelSource
from ktlskit.patchchecks import export, model, patchset, report, runner, toolchain

DEMO_C = "drivers/net/demo/demo.c"
DEMO_H = "include/demo/demo.h"
SELFTESTS = "tools/testing/selftests/net/demo"
KDOC_SUB = """
/**
 * demo_sub() - subtract
 * @a: the minuend
 * @b: the subtrahend
 *
 * Return: @a minus @b
 */
int demo_sub(int a, int b)
{
	return a - b;
}
"""
# patch name stem -> the checks that must fail on it (every other check passes)
EXPECTED_FAILURES = {
    "0001": set(),
    "0002": {"signed_off_by", "checkpatch"},  # checkpatch also says MISSING_SIGN_OFF
    "0003": {"build_gcc", "build_clang"},
    "0004": {"fixes_tag", "checkpatch"},  # checkpatch knows BAD_FIXES_TAG too
    "0005": {"kdoc"},
    "0006": {"source_inline"},
    "0007": {"selftest"},
}


def _series(w: SeriesWriter) -> None:
    c = w.read(DEMO_C)
    w.commit("demo: add demo_sub()", "Callers need a difference as well as a sum.",
             {DEMO_C: c + KDOC_SUB,
              DEMO_H: w.read(DEMO_H).replace("int b);\n", "int b);\nint demo_sub(int a, "
                                             "int b);\n", 1)})
    c = w.read(DEMO_C)
    w.commit("demo: document the sum", "State that the sum is not checked for overflow.",
             {DEMO_C: c.replace(" * Return: the sum of @a and @b\n",
                                " * Return: the sum of @a and @b, not checked for overflow\n")},
             trailers="")
    c = w.read(DEMO_C)
    w.commit("demo: add demo_three()", "A helper that returns three, for the tests.",
             {DEMO_C: c + "\nint demo_three(void)\n{\n\treturn 3;\n}\n"})
    c = w.read(DEMO_C)
    w.commit("demo: return the sum directly", "The sum needs no local variable.",
             {DEMO_C: c.replace("the sum of @a and @b, not", "the sum of @a and @b; not")},
             trailers=f"Fixes: abc123 demo: the demo driver\nSigned-off-by: {AUTHOR}")
    c = w.read(DEMO_C)
    w.commit("demo: add demo_mul()", "Multiplication for the tests.",
             {DEMO_C: c + "\n/**\n * demo_mul() - multiply\n * @a: the first\n *\n"
                          " * Return: the product\n */\nint demo_mul(int a, int b)\n{\n"
                          "\treturn a * b;\n}\n",
              DEMO_H: w.read(DEMO_H).replace("#endif", "int demo_mul(int a, int b);\n\n#endif")})
    c = w.read(DEMO_C)
    w.commit("demo: add a twice helper", "Double a number, inlined.",
             {DEMO_C: c + "\nstatic inline int demo_twice(int a)\n{\n\treturn 2 * a;\n}\n\n"
                          "int demo_quad(int a)\n{\n\treturn demo_twice(demo_twice(a));\n}\n",
              DEMO_H: w.read(DEMO_H).replace("#endif", "int demo_quad(int a);\n\n#endif")})
    w.commit("selftests: demo: add a new test", "Test the demo driver some more.",
             {f"{SELFTESTS}/new_test.sh": "#!/bin/sh\n# SPDX-License-Identifier: GPL-2.0\n"
                                          "exit 0\n"})


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> tuple[runner.Report, KernelSource]:
    kernel = kernel_source()
    base = tmp_path_factory.mktemp("nipa")
    tree = make_tree(base / "linux", kernel)
    w = SeriesWriter(tree, base)
    _series(w)
    pdir = base / "patches"
    files = w.format_patch(pdir)
    cover = files[0]
    cover.write_text(cover.read_text().replace("*** SUBJECT HERE ***", "demo: seven patches")
                     .replace("*** BLURB HERE ***", "One clean patch and six broken ones."))
    (pdir / "waivers.toml").write_text(
        '[[waiver]]\npatch = "0007-*"\ncheck = "checkpatch"\npattern = "FILE_PATH_CHANGES"\n'
        'reason = "tools/testing/selftests/net/demo/ is in the DEMO entry\'s F: lines"\n\n'
        '[[waiver]]\npatch = "*"\ncheck = "kdoc"\npattern = "never matches"\n'
        'reason = "a stale waiver, to be reported as unused"\n')
    mp = pytest.MonkeyPatch()
    mp.setenv("KTLSKIT_CACHE", str(base / "cache"))
    try:
        src = KernelSource("tree", tree, "tree-mini", "7.3.4")
        rep = runner.run(src, patchset.load(pdir), runner.CheckOptions())
    finally:
        mp.undo()
    return rep, src


def _by_stem(rep: runner.Report) -> dict[str, runner.PatchReport]:
    return {p.patch.path.name[:4]: p for g in rep.groups for p in g.patches}


@pytest.mark.parametrize("stem", sorted(EXPECTED_FAILURES))
def test_each_check_catches_its_case_and_nothing_else(checked, stem: str) -> None:
    rep, src = checked
    pr = _by_stem(rep)[stem]
    failing = {c for c, r in pr.results.items() if r.status == "fail"}
    want = set(EXPECTED_FAILURES[stem])
    if isinstance(toolchain.clang(src.path), toolchain.Unavailable):
        want.discard("build_clang")
        assert pr.results["build_clang"].status == "cannot-run"
    assert failing == want, {c: pr.results[c].waived.outcome for c in failing ^ want}
    others = {c: r.status for c, r in pr.results.items()
              if c not in want and c != "build_clang"}
    expected_others = {c: "pass" for c in others}
    if stem == "0007":
        expected_others["checkpatch"] = "waived"
    assert others == expected_others


def test_findings_name_the_problem(checked) -> None:
    rep, _ = checked
    p = _by_stem(rep)
    assert any("demo_three" in f for f in p["0003"].results["build_gcc"].waived.remaining)
    assert any("12 digits" in f for f in p["0004"].results["fixes_tag"].waived.remaining)
    assert any("'b'" in f for f in p["0005"].results["kdoc"].waived.remaining)
    assert any("demo_twice" in f for f in p["0006"].results["source_inline"].waived.remaining)
    assert any("new_test.sh not found in" in f
               for f in p["0007"].results["selftest"].waived.remaining)
    assert "no Signed-off-by" in p["0002"].results["signed_off_by"].waived.outcome.reason


def test_series_checks_and_verdict(checked) -> None:
    rep, _ = checked
    (g,) = rep.groups
    assert {n: r.status for n, r in g.series.items()} == {
        "series_size": "pass", "cover_letter": "pass", "numbering": "pass",
        "target_tree": "pass"}
    assert "export designates net" in g.series["target_tree"].waived.outcome.reason
    assert not rep.ok


def test_waivers_used_and_unused_are_reported(checked) -> None:
    rep, _ = checked
    used, stale = rep.waivers
    assert used.used and not stale.used
    text = report.render(rep)
    assert "in the DEMO entry's F: lines" in text
    assert "UNUSED" in text and "a stale waiver" in text
    data = report.to_json(rep)
    assert [w["reason"] for w in data["unused_waivers"]] == [stale.reason]
    json.dumps(data)


def test_ktap_and_table(checked) -> None:
    rep, _ = checked
    k = report.to_ktap(rep)
    assert k.startswith("KTAP version 1\n")
    assert "not ok" in k and "# XFAIL waived:" in k
    assert "0002-demo-document-the-sum.patch:signed_off_by" in k
    text = report.render(rep)
    assert "verdict: FAIL" in text and "wall time:" in text
    assert set(rep.seconds) >= set(runner.PATCH_CHECKS)


def test_export_addresses_maintainers_and_names_the_base(checked, tmp_path: Path) -> None:
    rep, src = checked
    out = tmp_path / "out"
    (done,) = export.export(rep.patchset, src, out)
    assert done.tree == "net"  # one patch has a Fixes: tag
    assert done.base == "v7.3.4" and "no git history" in done.base_note
    names = [f.name for f in done.files]
    assert names[0] == "0000-cover-letter.patch" and len(names) == 8
    cover = done.files[0].read_text()
    assert "Subject: [PATCH net 0/7] demo: seven patches" in cover
    assert "From: Dev Eloper <dev@example.org>" in cover
    assert "One clean patch and six broken ones." in cover
    assert "\nbase-commit: v7.3.4\n-- \n" in cover
    assert "netdev@vger.kernel.org" in cover.split("\n\n", 1)[0]
    first = done.files[1].read_text()
    head = first.split("\n\n", 1)[0]
    assert "Subject: [PATCH net 1/7] demo: add demo_sub()" in head
    assert "To: netdev@vger.kernel.org" in head
    assert "Demo Maintainer <demo@example.org>" in head and "linux-kernel@" not in head
    with pytest.raises(export.ExportError, match="--force"):
        export.export(rep.patchset, src, out)


def test_export_names_earlier_series_as_prerequisites(checked, tmp_path: Path) -> None:
    rep, src = checked
    (g,) = rep.patchset.groups
    first = model.SeriesGroup("first", None, g.patches[:1])
    rest = model.SeriesGroup("rest", g.cover, g.patches[1:])
    ps = dataclasses.replace(rep.patchset, groups=(first, rest))
    one, two = export.export(ps, src, tmp_path / "out")
    assert "prerequisite-patch-id:" not in one.files[0].read_text()
    (want,) = export.patch_ids(g.patches[0].path.read_text())
    cover = two.files[0].read_text()
    assert f"\nbase-commit: v7.3.4\nprerequisite-patch-id: {want}\n-- \n" in cover
