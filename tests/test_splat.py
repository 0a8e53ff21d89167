"""The console splat parser, on real guest consoles and on report shapes it must know."""

from pathlib import Path

import pytest

from ktlskit.hosts.host import HostSplatError
from ktlskit.hosts.splat import classify, find_splats, strip_prefix
from ktlskit.hosts.watch import SplatWatch

FIXTURES = Path(__file__).parent / "fixtures"


def _real(name: str) -> str:
    return (FIXTURES / name).read_text(errors="replace")


def test_real_lkdtm_warning() -> None:
    splats = find_splats(_real("console-lkdtm-warning.log"))
    assert [s.kind for s in splats] == ["WARNING"]
    s = splats[0]
    assert s.title.startswith("WARNING: drivers/misc/lkdtm/bugs.c:")
    assert "lkdtm_WARNING" in s.report
    assert s.report.splitlines()[0].startswith("------------[ cut here ]")
    assert s.report.splitlines()[-1].startswith("---[ end trace")


def test_real_panic() -> None:
    splats = find_splats(_real("console-lkdtm-panic.log"))
    assert "panic" in [s.kind for s in splats]
    panic = next(s for s in splats if s.kind == "panic")
    assert "dumptest" in panic.title


def test_a_clean_boot_and_a_deliberate_hang_have_no_splat() -> None:
    assert find_splats(_real("console-hang.log")) == []


def test_line_numbers_point_at_the_report() -> None:
    text = _real("console-lkdtm-warning.log")
    s = find_splats(text)[0]
    assert "cut here" in text.splitlines()[s.line - 1]


@pytest.mark.parametrize(("line", "kind"), [
    ("[   1.0] WARNING: CPU: 0 PID: 1 at net/tls/tls_device.c:10 f+0x1/0x2", "WARNING"),
    ("[   1.0] WARNING: net/tls/tls_sw.c:99 at tls_rx_one_record+0x1/0x9, CPU#0: a/1",
     "WARNING"),
    ("[   1.0] BUG: KASAN: slab-use-after-free in tls_encrypt_done+0x10/0x20", "KASAN"),
    ("[   1.0] BUG: KFENCE: out-of-bounds read in f+0x1/0x2", "KFENCE"),
    ("[   1.0] BUG: sleeping function called from invalid context at mm/slab.c:1",
     "atomic-sleep"),
    ("[   1.0] BUG: kernel NULL pointer dereference, address: 0000000000000008", "BUG"),
    ("[   1.0] kernel BUG at net/core/skbuff.c:200!", "BUG"),
    ("[   1.0] WARNING: possible circular locking dependency detected", "lockdep"),
    ("[   1.0] WARNING: suspicious RCU usage", "lockdep"),
    ("[   1.0] UBSAN: shift-out-of-bounds in net/tls/tls.c:1:2", "UBSAN"),
    ("[   1.0] Oops: general protection fault, probably for non-canonical address", "Oops"),
    ("[   1.0] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:", "RCU stall"),
    ("[   1.0] INFO: task ktls:123 blocked for more than 120 seconds.", "hung task"),
    ("[   1.0] kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)",
     "kmemleak"),
    ("[   1.0] Kernel panic - not syncing: Fatal exception", "panic"),
    ("[   1.0] [    T1] BUG: KASAN: use-after-free in x", "KASAN"),
])
def test_classify_each_kind(line: str, kind: str) -> None:
    assert classify(strip_prefix(line)) == kind


@pytest.mark.parametrize("line", [
    "[   1.0] virtme-ng-init: WARNING: not a kernel splat in the middle of a line",
    "[   1.0] lkdtm: Performing direct entry WARNING",
    "[   1.0] ktlskit: sync 3",
    "[   1.0] Hypervisor detected: KVM",
])
def test_ordinary_lines_are_not_splats(line: str) -> None:
    assert classify(strip_prefix(line)) is None


def test_two_reports_in_a_row_are_split() -> None:
    text = "\n".join([
        "[ 1.0] ------------[ cut here ]------------",
        "[ 1.0] WARNING: a.c:1 at f+0x1/0x2, CPU#0: x/1",
        "[ 1.0] Call Trace:",
        "[ 1.0] ---[ end trace 0000000000000000 ]---",
        "[ 2.0] BUG: KASAN: slab-out-of-bounds in g+0x1/0x2",
        "[ 2.0] Read of size 8",
        "[ 2.0] ==================================================================",
        "[ 3.0] ordinary line",
    ])
    splats = find_splats(text)
    assert [s.kind for s in splats] == ["WARNING", "KASAN"]
    assert "ordinary line" not in splats[1].report


def test_watch_reports_each_splat_once() -> None:
    log = ["[ 1.0] booting"]
    watch = SplatWatch(lambda: "\n".join(log), settle=0)
    watch.check()
    log += ["[ 2.0] BUG: KASAN: use-after-free in f+0x1/0x2", "[ 2.0] ====================="
            "============================================="]
    with pytest.raises(HostSplatError, match="KASAN") as err:
        watch.check("in a test")
    assert "in a test" in str(err.value)
    watch.check()  # already reported
