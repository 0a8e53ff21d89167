"""``bench offload --baseline-until`` and ``kernel build --until``: bad input fails at once,
before any build or boot, and the before/after figures are derived as documented."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from ktlskit import baselinereport, cli
from ktlskit.benchreport import clock_line
from ktlskit.commands.benchrun import bench_guest_config, clock_facts
from ktlskit.commands.offloadbaseline import boot_order
from ktlskit.guest.vng import vng_argv

REPO = Path(__file__).resolve().parents[1]
SUB_SERIES = "tls-fixes, tls-offload, tls-rekey"


@pytest.fixture()
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache in which any build, fetch or boot would leave a trace; this project."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("KTLSKIT_CACHE", str(cache))
    monkeypatch.setenv("KTLSKIT_PROJECT", str(REPO))
    return cache


def _fails_at_once(argv: list[str], cache: Path, capsys: pytest.CaptureFixture[str]) -> str:
    t0 = time.monotonic()
    rc = cli.main(argv)
    elapsed = time.monotonic() - t0
    err = capsys.readouterr().err
    assert rc == 1, err
    assert elapsed < 1.0, f"{argv} took {elapsed:.2f} s to fail"
    leftovers = {p.name for p in cache.iterdir()} if cache.exists() else set()
    assert not leftovers & {"build", "trees", "src", "guests"}, leftovers
    return err


@pytest.mark.parametrize("argv", [["kernel", "build", "--until", "tls-nothing"],
                                  ["bench", "offload", "--baseline-until", "tls-nothing"]])
def test_an_unknown_sub_series_fails_before_any_work_naming_the_valid_ones(
        argv: list[str], empty_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _fails_at_once(argv, empty_cache, capsys)
    assert "no sub-series 'tls-nothing'" in err and f"its sub-series are: {SUB_SERIES}" in err


@pytest.mark.parametrize("extra,message", [
    (["--baseline-until", "tls-rekey"], "that is the whole series"),
    (["--baseline-until", "tls-offload", "--rekey-every", "8"], "drop --rekey-every/--deladd"),
    (["--baseline-until", "tls-offload", "--deladd"], "drop --rekey-every/--deladd"),
    (["--baseline-until", "tls-offload", "--pairs", "0"], "--pairs must be a positive"),
    (["--baseline-until", "tls-offload", "--rounds", "0"], "--rounds must be a positive"),
    (["--baseline-until", "tls-offload", "--bytes", "0"], "--bytes must be a positive"),
    (["--baseline-until", "tls-offload", "--cpus", "0"], "--cpus 0"),
    (["--pairs", "3"], "--pairs goes with --baseline-until"),
    (["--rounds", "0"], "--rounds must be a positive"),
    (["--icount", "11"], "--icount 11: a shift from 0 to 10"),
    (["--baseline-until", "tls-offload", "--icount", "-1"], "--icount -1: a shift from 0"),
    (["--icount", "3", "--accel", "kvm"], "cannot go with --accel kvm"),
])
def test_bad_before_after_options_fail_before_any_work(
        extra: list[str], message: str, empty_cache: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert message in _fails_at_once(["bench", "offload", *extra], empty_cache, capsys)


def test_icount_gives_a_tcg_guest_whose_clock_counts_instructions() -> None:
    args = cli.parser().parse_args(["bench", "offload", "--icount", "3"])
    cfg = bench_guest_config(args)
    assert cfg.accel == "tcg"
    assert cfg.qemu_opts == ("-accel", "tcg,thread=single", "-icount", "shift=3,sleep=off")
    argv = vng_argv(Path("bzImage"), kvm=False, cpus=cfg.cpus, memory=cfg.memory, append=[],
                    qemu_opts=list(cfg.qemu_opts), command=["true"])
    assert "--qemu-opts=-icount" in argv and "--qemu-opts=shift=3,sleep=off" in argv
    facts = clock_facts(cfg)
    assert facts["icount"] == "shift=3,sleep=off"
    assert "counts executed instructions" in clock_line(facts)
    plain = bench_guest_config(cli.parser().parse_args(["bench", "offload"]))
    assert plain.qemu_opts == () and "wall time" in clock_line(clock_facts(plain))


def test_the_kernels_alternate_one_boot_at_a_time() -> None:
    assert boot_order(3) == ["before", "after"] * 3


# ---- the figures ------------------------------------------------------------------------------

def _boot(kernel: str, pair: int, rates: dict[str, list[float]],
          cpu_rates: dict[str, list[float]] | None = None) -> dict[str, Any]:
    """One boot's offloadbench document with the given per-round MB/s of each mode (and MB per
    CPU-second, when given)."""
    rounds = len(next(iter(rates.values())))
    transfers = [{m: {"mbytes_per_s": r[i],
                      **({"mbytes_per_cpu_s": cpu_rates[m][i]} if cpu_rates else {})}
                  for m, r in rates.items()} for i in range(rounds)]
    return {"kernel": kernel, "pair": pair, "seconds": 60.0,
            "host": {"loadavg_before": [1.0 + pair, 1.0, 1.0]},
            "raw": {"kernel": "7.3.4", "rounds": rounds, "unsupported": {},
                    "round_data": [{"order": list(rates), "transfers": t} for t in transfers]}}


def _raw(offload_after: list[float]) -> dict[str, Any]:
    """Three pairs; TLS 1.3 offload before 10 MB/s (two rounds 9 and 11), after as given per
    pair; software 20 MB/s on both kernels."""
    boots = []
    for pair, after in enumerate(offload_after):
        sw = {"tls1.3-software": [20.0, 20.0]}
        boots.append(_boot("before", pair, {"tls1.3-offload": [9.0, 11.0], **sw}))
        boots.append(_boot("after", pair, {"tls1.3-offload": [after, after], **sw}))
    kernel = {"patches": 14, "last_patch": "tls-offload/0011-x.patch", "series_digest": "d",
              "bzimage": "/b/bzImage", "build_dir": "/b"}
    return {"baseline_until": "tls-offload", "pairs": len(offload_after), "rounds_per_boot": 2,
            "bytes": 1 << 20, "cipher": "aes-gcm-128", "versions": ["1.3"], "build_s": 1.0,
            "wall_s": 400.0, "boots": boots,
            "kernels": {"before": {**kernel, "until": "tls-offload"},
                        "after": {**kernel, "until": "", "patches": 26}}}


def test_after_before_is_one_ratio_per_pair_of_boot_medians() -> None:
    s = baselinereport.summarize(_raw([9.9, 10.0, 9.5]))
    c = s.after_before["tls1.3-offload"]
    assert c.ratios == pytest.approx((0.99, 1.0, 0.95))
    assert s.rates["before"]["tls1.3-offload"].median == 10.0
    assert s.after_before["tls1.3-software"].ratios == (1.0, 1.0, 1.0)
    assert s.after_before["tls1.3-offload/software"].ratios == pytest.approx((0.99, 1.0, 0.95))
    # offload / software inside each round, all boots of a kernel: 9/20 and 11/20, three times
    assert s.offload_vs_software["before"]["1.3"].ratios == pytest.approx((0.45, 0.55) * 3)
    b = s.budget["tls1.3-offload"]
    assert (b.verdict, b.pairs_below, b.pairs) == ("not resolved", 1, 3)
    # 0.95..1.00 around 0.99: offload and offload / software warn, software (1.0 flat) not
    assert s.warnings == [c.warning, s.after_before["tls1.3-offload/software"].warning]
    assert c.warning is not None and "within the noise" in c.warning


@pytest.mark.parametrize("after,verdict", [([9.0, 9.1, 9.2], "missed"),
                                           ([9.8, 10.0, 10.5], "met"),
                                           ([9.0, 10.0, 10.5], "not resolved")])
def test_only_every_pair_on_one_side_decides_the_budget(after: list[float],
                                                        verdict: str) -> None:
    assert baselinereport.summarize(_raw(after)).budget["tls1.3-offload"].verdict == verdict


def test_cpu_time_per_byte_decides_its_own_budget_where_wall_time_cannot() -> None:
    """MB/s of the pairs disagree (0.80 and 1.20 after / before); CPU per byte does not
    (0.990 and 0.995): the CPU budget is met, the MB/s one not resolved."""
    boots = []
    for pair, (wall, cpu) in enumerate([(8.0, 19.8), (12.0, 19.9)]):
        sw = [20.0, 20.0]
        boots.append(_boot("before", pair, {"tls1.3-offload": [10.0, 10.0], "tls1.3-software": sw},
                           {"tls1.3-offload": [20.0, 20.0], "tls1.3-software": [40.0, 40.0]}))
        boots.append(_boot("after", pair, {"tls1.3-offload": [wall, wall], "tls1.3-software": sw},
                           {"tls1.3-offload": [cpu, cpu], "tls1.3-software": [40.0, 40.0]}))
    raw = {**_raw([10.0]), "pairs": 2, "boots": boots}
    s = baselinereport.summarize(raw)
    assert s.budget["tls1.3-offload"].verdict == "not resolved"
    cpu = s.budget["tls1.3-offload cpu"]
    assert (cpu.verdict, cpu.pairs, cpu.median) == ("met", 2, pytest.approx(0.9925))
    assert s.cpu_rates["after"]["tls1.3-offload"].median == pytest.approx(19.85)
    text = baselinereport.render(raw, s, {"cpu": "x", "cpus": 2}, "tcg")
    row = next(line for line in text.splitlines() if "offload MB/CPU-s" in line)
    assert row.split()[-2:] == ["0.992", "(0.990..0.995)"]  # 0.9925, rounded half to even
    assert "budget: tls1.3-offload cpu after / before >= 0.980: met by every pair" in text
    # documents from before CPU time was taken have no CPU rows
    assert "tls1.3-offload cpu" not in baselinereport.summarize(_raw([10.0])).budget


def test_the_table_json_and_plot_from_an_earlier_run(
        tmp_path: Path, empty_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--from-json recomputes a before/after document: the table on stdout, no kernel."""
    raw = _raw([9.9, 10.0, 9.5])
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps({"raw": raw, "host": {"cpu": "x", "cpus": 2}, "accel": "tcg"}))
    out = tmp_path / "out"
    assert cli.main(["bench", "offload", "--from-json", str(earlier), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "before: patches/series up to tls-offload, 14 patches" in text
    row = next(line for line in text.splitlines() if "offload MB/s" in line)
    assert row.split()[1:] == ["offload", "MB/s", "10.00", "(10.00..10.00)", "9.90",
                               "(9.50..10.00)", "0.990", "(0.950..1.000)"]
    assert ("budget: tls1.3-offload after / before >= 0.980: not resolved by this run: 1 of 3 "
            "pairs below 0.980, the others not (median 0.990, above it)") in text
    assert ("warning: tls1.3-offload after / before: the per-pair values span 0.950..1.000 (a "
            "factor 1.053 between pairs)") in text
    assert "wall time 400 s: builds 1 s, 6 boots 360 s" in text
    doc = json.loads((out / "bench-offload-baseline.json").read_text())
    assert doc["summary"]["after_before"]["tls1.3-offload"]["median"] == 0.99
    assert (out / "bench-offload-baseline.png").read_bytes()[:4] == b"\x89PNG"
    # its kernels are the file's: naming another baseline is refused
    assert cli.main(["bench", "offload", "--from-json", str(earlier), "--out", str(out),
                     "--baseline-until", "tls-fixes"]) == 1
    assert "drop --baseline-until" in capsys.readouterr().err
