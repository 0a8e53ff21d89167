"""The pieces of ``patches check`` that need no kernel tree."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ktlskit.kernel.source import KernelSource
from ktlskit.patchchecks import buildwarn, checkpatch, export, fixes, patchfile, seriescheck
from ktlskit.patchchecks import waivers as wv
from ktlskit.patchchecks.model import PatchContext, SeriesGroup, Status, failed, new_since, passed
from ktlskit.patchchecks.selftest import order_problems

PROJECT_PATCH = (Path(__file__).parent.parent / "patches" / "tls-offload"
                 / "0007-netdevsim-add-kTLS-TX-device-offload.patch")

MAIL = """\
From 1234567890abcdef1234567890abcdef12345678 Mon Sep 17 00:00:00 2001
From: Dev Eloper
 <dev@example.org>
Date: Fri, 2 Jan 2026 03:04:05 +0000
Subject: [PATCH net-next v2 2/3] demo: do a thing that needs a long
 subject line

Body text.

Fixes: 0123456789ab ("demo: the demo driver")
Signed-off-by: Dev Eloper <dev@example.org>
---
 a.c | 2 +-
 1 file changed, 1 insertion(+), 1 deletion(-)

diff --git a/a.c b/a.c
index 1111111..2222222 100644
--- a/a.c
+++ b/a.c
@@ -1,2 +1,2 @@
 int a;
-int b;
+static inline int b(void) { return 0; }
diff --git a/new.h b/new.h
new file mode 100644
--- /dev/null
+++ b/new.h
@@ -0,0 +1 @@
+static int helper(void);
--
2.39.5
"""


def _patch(text: str = MAIL, name: str = "0002-x.patch") -> patchfile.PatchFile:
    return patchfile.parse_text(text, Path(name), name)


def _ctx(p: patchfile.PatchFile, src: Path = Path("/nonexistent")) -> PatchContext:
    return PatchContext(p, 1, SeriesGroup("s", None, (p,)),
                        KernelSource("tree", src, "t", "7.3.4"), None)


def test_parse_format_patch() -> None:
    p = _patch()
    assert (p.author_name, p.author_email) == ("Dev Eloper", "dev@example.org")
    assert p.title == "demo: do a thing that needs a long subject line"
    assert (p.tags.tree, p.tags.number, p.tags.total) == ("net-next", 2, 3)
    assert p.trailers("fixes") == ['0123456789ab ("demo: the demo driver")']
    assert [(f.path, f.status) for f in p.files] == [("a.c", "modified"), ("new.h", "added")]
    assert p.files[0].removed == ("int b;",) and len(p.files[0].added) == 1
    assert not p.is_cover


def test_parse_the_projects_patch() -> None:
    p = patchfile.parse(PROJECT_PATCH, "tls-offload/" + PROJECT_PATCH.name)
    in_series = [f for f in PROJECT_PATCH.parent.glob("0*.patch") if not f.name.startswith("0000")]
    assert p.author_email and p.tags.number == 7 and p.tags.total == len(in_series)
    assert "drivers/net/netdevsim/tls.c" in {f.path for f in p.files if f.status == "added"}
    assert p.short == "tls-offload/0007"
    assert p.trailers("Signed-off-by")


def test_plain_diff_and_refusals() -> None:
    plain = _patch("--- a/x.c\n+++ b/x.c\n@@ -1 +1 @@\n-a\n+b\n", "x.patch")
    assert plain.author_email is None and plain.files[0].path == "x.c"
    with pytest.raises(patchfile.PatchFileError, match="no diff"):
        _patch("From: A <a@b.c>\nSubject: [PATCH 1/2] x\n\nno diff here\n", "1.patch")
    cover = _patch("From: A <a@b.c>\nSubject: [PATCH 0/2] x\n\nblurb\n", "0000-cover.patch")
    assert cover.is_cover


def test_signed_off_by_and_inline_checks() -> None:
    from ktlskit.patchchecks.inline import HeaderInline, SourceInline
    from ktlskit.patchchecks.signoff import SignedOffBy
    p = _patch()
    assert SignedOffBy().run(_ctx(p)).status is Status.PASS
    other = _patch(MAIL.replace("Signed-off-by: Dev Eloper <dev@example.org>",
                                "Signed-off-by: Someone Else <else@example.org>"))
    out = SignedOffBy().run(_ctx(other))
    assert out.status is Status.FAIL and "author Signed-off-by missing" in out.findings[0]
    assert SourceInline().run(_ctx(p)).status is Status.FAIL
    comment = _patch(MAIL.replace("+static inline int b(void) { return 0; }",
                                  "+/* inline crypto, as a NIC does */"))
    assert SourceInline().run(_ctx(comment)).findings == (
        "a.c: +/* inline crypto, as a NIC does */ [in a comment]",)
    assert HeaderInline().run(_ctx(p)).findings == ("new.h: +static int helper(void);",)


@pytest.mark.parametrize(("value", "problem"), [
    ('0123456789ab ("demo: x")', None),
    ('0123456 ("demo: x")', "12 digits"),
    ("0123456789ab demo: x", '("subject")'),
    ('commit 0123456789ab ("demo: x")', "leading word"),
    ("0123456789ab", "missing subject"),
    ("see the other patch", "no commit hash"),
])
def test_fixes_tag_format(value: str, problem: str | None) -> None:
    _, problems = fixes.parse_tag(value)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, text=True,
                          capture_output=True, timeout=60,
                          env={"GIT_AUTHOR_NAME": "A", "GIT_AUTHOR_EMAIL": "a@b.c",
                               "GIT_COMMITTER_NAME": "A", "GIT_COMMITTER_EMAIL": "a@b.c",
                               "HOME": str(repo), "PATH": "/usr/bin:/bin"}).stdout


def test_fixes_target_resolved_in_a_git_tree(tmp_path: Path) -> None:
    tree = tmp_path / "linux"
    tree.mkdir()
    (tree / "f").write_text("x\n")
    _git(tree, "init", "-q")
    _git(tree, "add", "f")
    _git(tree, "commit", "-q", "-m", "demo: the demo driver")
    sha = _git(tree, "rev-parse", "HEAD")[:12]
    good = _patch(MAIL.replace("0123456789ab", sha))
    assert fixes.FixesTagCheck().run(_ctx(good, tree)).status is Status.PASS
    wrong = _patch(MAIL.replace("0123456789ab", sha).replace('("demo: the demo', '("demo: a'))
    out = fixes.FixesTagCheck().run(_ctx(wrong, tree))
    assert out.status is Status.FAIL and "does not match" in out.reason
    missing = fixes.FixesTagCheck().run(_ctx(_patch(), tree))
    assert "does not exist" in missing.reason


def test_fixes_without_history_cannot_run(tmp_path: Path) -> None:
    out = fixes.FixesTagCheck().run(_ctx(_patch(), tmp_path))
    assert out.status is Status.CANNOT_RUN and "no git history" in out.reason


def test_checkpatch_parse_marks_types_nipa_ignores() -> None:
    out = ("WARNING:FILE_PATH_CHANGES: added, moved or deleted file(s), does MAINTAINERS need "
           "updating?\n#203: \nnew file mode 100644\n\nWARNING:LONG_LINE: line length of 81 "
           "exceeds 80 columns\n#466: FILE: drivers/net/netdevsim/tls.c:259:\n+x\n\n"
           "total: 0 errors, 2 warnings, 0 checks, 705 lines checked\n")
    rep = checkpatch.parse(out)
    assert rep is not None and (rep.errors, rep.warnings) == (0, 2)
    assert rep.findings[0].endswith("[NIPA ignores this type]")
    assert rep.findings[1] == ("WARNING:LONG_LINE: line length of 81 exceeds 80 columns "
                               "(drivers/net/netdevsim/tls.c:259:)")
    assert checkpatch.parse("perl: no such file") is None


def test_build_output_is_filed_per_unit_and_compared_without_lines() -> None:
    split = buildwarn.OutputSplitter(["/t/", "/b/"])
    for line in ["  CC      drivers/a.o",
                 "/t/drivers/a.c:3:5: warning: no previous prototype for 'f' "
                 "[-Wmissing-prototypes]",
                 "    3 | int f(void)", "  CC      drivers/b.o", "  LD      vmlinux.o",
                 "vmlinux.o: warning: objtool: g+0x1c: call without frame pointer"]:
        split.feed(line)
    assert split.units["CC drivers/a.o"] == [
        "drivers/a.c:3:5: warning: no previous prototype for 'f' [-Wmissing-prototypes]"]
    assert split.units["CC drivers/b.o"] == []
    moved = "drivers/a.c:9:5: warning: no previous prototype for 'f' [-Wmissing-prototypes]"
    assert new_since(split.units["CC drivers/a.o"], [moved], buildwarn.normalize) == []
    assert buildwarn.normalize(split.units["LD vmlinux.o"][0]) == \
        "vmlinux.o: warning: objtool: g: call without frame pointer"


def test_ledger_forgets_units_whose_source_is_gone(tmp_path: Path) -> None:
    (tmp_path / "a.c").write_text("")
    led = buildwarn.Ledger({"CC a.o": ["w"], "CC gone.o": ["w"], "LD vmlinux.o": []}, True)
    led.prune(tmp_path)
    assert set(led.units) == {"CC a.o", "LD vmlinux.o"}


def test_waivers_validate_and_apply(tmp_path: Path) -> None:
    f = tmp_path / "waivers.toml"
    f.write_text('[[waiver]]\npatch = "*"\ncheck = "nope"\npattern = "x"\nreason = "r"\n')
    with pytest.raises(wv.WaiverError, match="unknown check 'nope'"):
        wv.load(f, {"checkpatch"})
    f.write_text('[[waiver]]\npatch = "*"\ncheck = "checkpatch"\npattern = "("\nreason = "r"\n')
    with pytest.raises(wv.WaiverError, match="not a regex"):
        wv.load(f, {"checkpatch"})
    f.write_text('[[waiver]]\npatch = "*"\ncheck = "checkpatch"\npattern = "x"\n')
    with pytest.raises(wv.WaiverError, match="missing \\['reason'\\]"):
        wv.load(f, {"checkpatch"})
    f.write_text('[[waiver]]\npatch = "00*"\ncheck = "checkpatch"\npattern = "LONG"\n'
                 'reason = "r"\n')
    (w,) = wv.load(f, {"checkpatch"})
    partly = wv.apply([w], "0001", "checkpatch", failed("2", ["WARNING:LONG_LINE", "ERROR:X"]))
    assert partly.status is Status.FAIL and partly.remaining == ("ERROR:X",)
    whole = wv.apply([w], "0001", "checkpatch", failed("1", ["WARNING:LONG_LINE"]))
    assert whole.status is Status.WAIVED and len(w.used) == 2
    assert wv.apply([w], "0001", "checkpatch", passed("ok")).status is Status.PASS


def test_series_checks() -> None:
    p = _patch()
    many = SeriesGroup("big", None, tuple([p] * 16))
    assert seriescheck.series_size(many).status is Status.FAIL
    assert seriescheck.cover_letter(many).status is Status.FAIL
    net = _patch(MAIL.replace("net-next v2 2/3", "net 1/1").replace("Fixes:", "Link:"))
    out = seriescheck.target_tree(SeriesGroup("n", None, (net,)))
    assert out.status is Status.FAIL and "Fixes" in out.reason
    assert seriescheck.numbering(SeriesGroup("one", None, (p,))).status is Status.FAIL
    assert seriescheck.designated_tree(SeriesGroup("one", None, (p,))) == "net"


def test_selftest_lists_stay_sorted(tmp_path: Path) -> None:
    d = tmp_path / "tools/testing/selftests/net/x"
    d.mkdir(parents=True)
    (d / "config").write_text("CONFIG_NET=y\nCONFIG_TLS=y\nCONFIG_IPV6=y\n")
    (d / "Makefile").write_text("TEST_PROGS := \\\n\ta.sh \\\n\tc.sh \\\n\tb.sh \\\n"
                                "# end of TEST_PROGS\n")
    rel = "tools/testing/selftests/net/x"
    assert order_problems(tmp_path, f"{rel}/config", ("CONFIG_IPV6=y",))
    assert order_problems(tmp_path, f"{rel}/config", ("CONFIG_NET=y",)) == []
    assert order_problems(tmp_path, f"{rel}/Makefile", ("\tb.sh \\",))


def test_export_base_names() -> None:
    assert export.version_tag("7.3.4") == "v7.3.4"
    assert export.version_tag("7.3.0") == "v7.3"
    assert export.version_tag("7.4.0-rc2") == "v7.4-rc2"
    cover = patchfile.parse(PROJECT_PATCH.parent / "0000-cover-letter.patch", "c")
    text = export.cover_text(cover)
    assert "Core (patches 1-6)\n======" in text and "(10):" not in text
    assert "files changed" not in text and "prerequisite-patch-id" not in text


@pytest.mark.parametrize(("prefix", "tree", "rfc"), [
    ("PATCH net-next v2 2/3", "net-next", False),  # named: kept, although it has Fixes:
    ("RFC PATCH net-next 2/3", "net-next", True),
    ("PATCH 2/3", None, False),  # names none: export designates by Fixes:
])
def test_export_keeps_the_tree_and_rfc_the_subjects_name(tmp_path: Path, prefix: str,
                                                         tree: str | None, rfc: bool) -> None:
    f = tmp_path / "0002-demo.patch"
    f.write_text(MAIL.replace("PATCH net-next v2 2/3", prefix))
    g = SeriesGroup("demo", None, (patchfile.parse(f, f.name),))
    assert export.named_tree(g) == tree
    assert export.is_rfc(g) is rfc
    assert seriescheck.designated_tree(g) == "net"


def test_self_test_no_match_in_a_tree_without_git_is_checked_against_the_files(
        tmp_path: Path) -> None:
    from ktlskit.patchchecks.maintainers import _matches_without_git
    (tmp_path / "drivers/net/netdevsim").mkdir(parents=True)
    (tmp_path / "drivers/net/netdevsim/tls_rx.c").write_text("")
    line = "./MAINTAINERS:19271: warning: no file matches\tF:\t{}"
    assert _matches_without_git(tmp_path, line.format("drivers/net/netdevsim/tls_rx.c"))
    assert _matches_without_git(tmp_path, line.format("drivers/net/netdevsim/tls*"))
    assert not _matches_without_git(tmp_path, line.format("drivers/net/netdevsim/tls_tx.c"))
    (tmp_path / ".git").mkdir()  # with git, get_maintainer.pl's own answer stands
    assert not _matches_without_git(tmp_path, line.format("drivers/net/netdevsim/tls_rx.c"))


def test_maintainers_self_test_checks_patterns_not_the_network(tmp_path: Path) -> None:
    """A new F: that matches nothing is reported; a W: link is not fetched (offline it would
    be "possible bad link", and the wget per link was most of a full check's time)."""
    import time

    from minikernel import kernel_source, make_tree

    from ktlskit.patchchecks.maintainers import self_test_warnings
    tree = make_tree(tmp_path / "k", kernel_source())
    (tree / ".git").mkdir()  # the self-test lists files with git: a real repository
    subprocess.run(["git", "init", "-q", str(tree)], check=True, timeout=30)
    subprocess.run(["git", "-C", str(tree), "add", "-A"], check=True, timeout=60)
    m = tree / "MAINTAINERS"
    m.write_text(m.read_text().replace(
        "F:\ttools/testing/selftests/net/demo/\n",
        "F:\ttools/testing/selftests/net/demo/\nF:\tdrivers/net/nowhere/\n"
        "W:\thttp://192.0.2.1/unreachable\n"))
    t0 = time.monotonic()
    warnings = self_test_warnings(tree)
    assert time.monotonic() - t0 < 10
    assert any("drivers/net/nowhere" in w for w in warnings), warnings
    assert not any("link" in w for w in warnings), warnings


def test_the_project_covers_list_every_earlier_patch_as_a_prerequisite() -> None:
    """The stored cover letters' ``prerequisite-patch-id:`` lines are those ``patches export``
    writes: ``git patch-id --stable`` of every patch of the series before it, in order."""
    from ktlskit.patchchecks import patchset
    ps = patchset.load(PROJECT_PATCH.parent.parent / "series")
    earlier: list[str] = []
    for g in ps.groups:
        assert g.cover is not None, g.name
        listed = [ln.split()[1] for ln in g.cover.path.read_text().splitlines()
                  if ln.startswith("prerequisite-patch-id:")]
        assert listed == earlier, g.name
        earlier += export.patch_ids("".join(p.path.read_text() for p in g.patches))
