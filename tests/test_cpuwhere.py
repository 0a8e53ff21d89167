"""Per-CPU accounting deltas from /proc/stat and /proc/softirqs (real kernel outputs)."""

from pathlib import Path

from ktlskit import cpuwhere

FIXTURES = Path(__file__).parent / "fixtures"


def test_stat_keeps_each_cpu_not_the_total() -> None:
    snap = cpuwhere.parse_stat((FIXTURES / "proc-stat-2cpu.txt").read_text())
    assert sorted(snap) == ["cpu0", "cpu1"]
    assert snap["cpu0"]["user"] == 4982671 and snap["cpu1"]["softirq"] == 36547
    assert snap["cpu1"]["idle"] == 2574928 and snap["cpu0"]["irq"] == 0


def test_softirqs_by_cpu_and_kind() -> None:
    snap = cpuwhere.parse_softirqs((FIXTURES / "proc-softirqs-2cpu.txt").read_text())
    assert snap["cpu0"]["NET_RX"] == 382513 and snap["cpu1"]["NET_TX"] == 225
    assert "BLOCK" not in snap["cpu1"] and snap["cpu1"]["TIMER"] == 1712989


def test_since_keeps_what_moved_per_cpu(tmp_path: Path) -> None:
    for name in ("stat", "softirqs"):
        (tmp_path / name).write_text((FIXTURES / f"proc-{name}-2cpu.txt").read_text())
    then = cpuwhere.snapshot(tmp_path)
    now = {cpu: dict(v) for cpu, v in then.items()}
    now["cpu1"]["softirq"] += 7
    now["cpu1"]["NET_RX"] += 3
    now["cpu0"]["idle"] += 250
    assert cpuwhere.since(now, then) == {"cpu0": {"idle": 250},
                                         "cpu1": {"softirq": 7, "NET_RX": 3}}
    assert cpuwhere.since(then, then) == {"cpu0": {}, "cpu1": {}}


def test_a_live_snapshot_has_every_cpu() -> None:
    snap = cpuwhere.snapshot()
    assert snap and all("idle" in v and "NET_RX" in v for v in snap.values())
