"""Software windows of a rekey with offload, from timed epochs (ktlskit.rekeywindows), and
how bench offload reports and plots them.

The hand-made epochs pin the arithmetic; tests/fixtures/nsim-epochs-{rekey,deladd}-{a,b}.txt
are the ports' tls/epochs of two real transfers (the median rounds of the two offload rekey
modes of a guest run of bench offload, 16 MiB, --rekey-every 32), with their KeyUpdate
times, stream layout and every 32nd point of their progress in nsim-epochs-rekey.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ktlskit import offloadreport, rekeywindows
from ktlskit.offload.rekey import parse_epochs
from ktlskit.rekeytrace import KeyUpdateTimes
from ktlskit.rekeywindows import Window

FIXTURES = Path(__file__).parent / "fixtures"
MS = 1_000_000
WRAP = 1 << 32


def _epoch(index: int, d: str, nbytes: int, first_ms: float, last_ms: float,
           seq: int | None = None) -> dict[str, Any]:
    return {"index": index, "direction": d,
            "start_seq": 1000 * index if seq is None else seq, "nbytes": nbytes,
            "first_ns": int(first_ms * MS) if nbytes else 0,
            "last_ns": int(last_ms * MS) if nbytes else 0}


def _timing(kus_ms: list[float], a: list[dict[str, Any]], b: list[dict[str, Any]],
            end_ms: float = 100.0) -> dict[str, Any]:
    """Keys of 300 wire bytes, one per KeyUpdate, the last 200."""
    steps = [(int(t * MS), int(t * 1000)) for t in range(0, int(end_ms) + 1, 5)]
    return {"key_updates_ns": [int(t * MS) for t in kus_ms],
            "key_starts": [300 * (k + 1) for k in range(len(kus_ms))],
            "wire_bytes": 300 * len(kus_ms) + 200, "progress": steps,
            "epochs": {"a": a, "b": b}, "epochs_lost": {"a": 0, "b": 0}}


# TX: the device takes each key where the last ended (pauses, no software byte); RX: del +
# add, a key the device never used (4), the TCP sequence wrapping at 2**32 before epoch 6.
# The sender stamps its KeyUpdates ahead of the device (its socket buffer).
TIMING = _timing(
    [5.0, 6.0, 7.0],
    [_epoch(0, "tx", 300, 0, 20, 0), _epoch(1, "tx", 300, 20.5, 50, 300),
     _epoch(2, "tx", 300, 50.25, 80, 600), _epoch(3, "tx", 200, 80.25, 100, 900)],
    [_epoch(3, "rx", 300, 1, 21, WRAP - 800), _epoch(4, "rx", 0, 0, 0, WRAP - 350),
     _epoch(5, "rx", 300, 61, 80, WRAP - 100), _epoch(6, "rx", 100, 90, 100, 250),
     _epoch(7, "tx", 5, 1, 2)])


def test_windows_are_the_gaps_between_epochs_with_bytes() -> None:
    w = rekeywindows.transfer_windows(TIMING)
    # attributed by where the keys start in the stream, not by the early stamps
    assert [(x.ms, x.key_update, x.rekeys) for x in w["tx"]] == \
        [(0.5, 0, 1), (0.25, 1, 1), (0.25, 2, 1)]
    assert [x.software_bytes for x in w["tx"]] == [0, 0, 0]
    # the key without bytes lies inside the first window (two KeyUpdates); the tx line of
    # port b is not RX's
    assert [(x.ms, x.key_update, x.rekeys) for x in w["rx"]] == [(40.0, 0, 2), (10.0, 2, 1)]
    # 700 bytes to the next key less 300 the device handled; 350 across 2**32 less 300
    assert [x.software_bytes for x in w["rx"]] == [400, 50]
    assert not any(x.until_end for x in w["tx"] + w["rx"])


def test_layout_of_the_bench_stream() -> None:
    # 16 MiB in 1024 records of 16384 + 22 bytes, a 27-byte KeyUpdate after every 32nd
    got = rekeywindows.layout(16 << 20, 16384, 32, 22)
    assert got["key_starts"][:2] == [525019, 2 * 525019] and len(got["key_starts"]) == 31
    assert got["wire_bytes"] == (16 << 20) + 1024 * 22 + 31 * 27
    assert rekeywindows.layout(1000, 16384, 0, 22) == {"key_starts": [], "wire_bytes": 1022}


def test_a_stream_that_ends_in_software_ends_its_window() -> None:
    t = _timing([19.0, 49.0], [_epoch(0, "tx", 300, 0, 20, 0), _epoch(1, "tx", 300, 21, 50, 300),
                               _epoch(2, "tx", 0, 0, 0, 650)], [], end_ms=90.0)
    (first, last) = rekeywindows.transfer_windows(t)["tx"]
    assert first.ms == 1.0 and not first.until_end
    assert (last.start_ns, last.end_ns, last.key_update, last.until_end) == \
        (50 * MS, 90 * MS, 1, True)
    assert last.software_bytes == 800 - 300 - 300  # to the stream's end, past the empty epoch


def test_share_clips_windows_to_the_transfer() -> None:
    ws = [Window("rx", 0, 20 * MS, 0), Window("rx", 50 * MS, 60 * MS, 1)]
    assert rekeywindows.share(ws, 10 * MS, 110 * MS) == pytest.approx(0.2)
    assert rekeywindows.share(ws, 5, 5) == 0.0


def test_binned_progress_is_cumulative_per_bin() -> None:
    progress = [(1000 * MS, 16), (1010 * MS, 32), (1030 * MS, 48), (1041 * MS, 64)]
    assert rekeywindows.binned(progress, 1000 * MS) == \
        [(0.0, 16), (0.02, 32), (0.04, 48), (0.041, 64)]
    assert rekeywindows.binned([], 0) == []


def test_mode_windows_pool_the_rounds() -> None:
    m = rekeywindows.mode_windows([TIMING, TIMING])
    assert m.rekeys.median == 3 and m.rekeys.n == 2
    assert m.kib["rx"] is not None and m.kib["rx"].max == pytest.approx(400 / 1024)
    assert m.ms["tx"] is not None and m.ms["tx"].n == 6 and m.ms["tx"].max == 0.5
    assert m.ms["rx"] is not None and m.ms["rx"].median == 25.0
    assert m.share["rx"].median == pytest.approx(0.5)  # 50 of 100 ms
    assert json.dumps(m.to_json())
    empty = rekeywindows.mode_windows([_timing([], [], [])])
    assert empty.ms == {"tx": None, "rx": None} and empty.rekeys.median == 0


def test_brief_names_both_directions() -> None:
    assert rekeywindows.brief(TIMING) == (
        "3 KeyUpdates; TX 3 windows, median 0.25 ms, max 0.50 ms, software KiB median 0; "
        "RX 2 windows, median 25.00 ms, max 40.00 ms, software KiB median 0")
    assert rekeywindows.describe([]) == "no window"


def test_keyupdate_times_travel_through_a_file() -> None:
    times = KeyUpdateTimes()
    times.stamp()
    times.stamp()
    times.hand_back()
    got = times.collect()
    assert got == times.times and got[0] <= got[1]
    assert not times.path.exists()


def _real_timing(kind: str) -> dict[str, Any]:
    meta = json.loads((FIXTURES / "nsim-epochs-rekey.json").read_text())[kind]
    epochs = {side: [vars(e) for e in parse_epochs(
        (FIXTURES / f"nsim-epochs-{kind}-{side}.txt").read_text())] for side in ("a", "b")}
    return {**meta, "epochs": epochs}


def test_real_epochs_device_taking_keys() -> None:
    """16 MiB, a KeyUpdate every 32 records: the device takes every key, one window per
    KeyUpdate each way; TX never in software (pauses of ms), RX behind the reader."""
    t = _real_timing("rekey")
    w = rekeywindows.transfer_windows(t)
    assert [x.key_update for x in w["tx"]] == list(range(31))
    assert [x.key_update for x in w["rx"]] == list(range(31))
    assert all(x.software_bytes == 0 for x in w["tx"])
    assert max(x.ms for x in w["tx"]) < 20
    assert sum(x.software_bytes for x in w["rx"]) > 0
    assert all(x.ms >= 0 for x in w["tx"] + w["rx"])


def test_real_epochs_del_add() -> None:
    """The same with refuse_rekey on both ports: keys skipped (windows span KeyUpdates),
    keys re-added on RX that the device never decrypted under, most of the time in software."""
    t = _real_timing("deladd")
    w = rekeywindows.transfer_windows(t)
    for d in ("tx", "rx"):
        assert len(w[d]) < 31 and sum(x.rekeys for x in w[d]) <= 31
        assert any(x.rekeys > 1 for x in w[d])
        start, end = rekeywindows.span(t)
        assert rekeywindows.share(w[d], start, end) > 0.5
    assert any(e["nbytes"] == 0 for e in t["epochs"]["b"])


def _raw(timing: dict[str, Any]) -> dict[str, Any]:
    names = ["tls1.3-offload+rekey/32", "tls1.3-offload+rekey/32-deladd"]
    modes = [{"version": "1.3", "offload": True, "rekey_every": 32, "deladd": d, "name": n}
             for n, d in zip(names, (False, True), strict=True)]
    dev = {"tx_share": 1.0, "rx_share": 1.0}
    rounds = [{"order": names, "transfers": {
        n: {"mbytes_per_s": rate * k, "samples": [[0.0, 0], [1.0, 10**6]], "key_updates": [],
            "device": dev, "timing": timing} for k, n in enumerate(names, start=1)}}
        for rate in (3.0, 2.0, 4.0)]
    return {"kernel": "7.3.4", "bytes": 1 << 20, "rounds": 3, "cipher": "aes-gcm-128",
            "modes": modes, "kernel_aead": {}, "round_data": rounds, "unsupported": {}}


def test_report_prints_and_plots_the_windows(tmp_path: Path) -> None:
    raw = _raw(TIMING)
    s = offloadreport.summarize(raw)
    assert set(s.windows) == {"tls1.3-offload+rekey/32", "tls1.3-offload+rekey/32-deladd"}
    assert [c.label for c in s.comparisons] == \
        ["tls1.3-offload+rekey/32-deladd / tls1.3-offload+rekey/32"]
    text = offloadreport.render(raw, s, {}, "tcg")
    assert ("tls1.3-offload+rekey/32-deladd  RX   3 (3..3)    2.0      25.000 / 40.000  0 / 0  "
            "        0.500 (0.500..0.500)") in text
    assert "software_windows" in s.to_json()
    assert offloadreport._median_transfer(raw, "tls1.3-offload+rekey/32")[0] == 0
    png = offloadreport.plot_rekey(raw, s, tmp_path / "r" / "bench-offload-rekey.png")
    assert png is not None and png.read_bytes()[:4] == b"\x89PNG"
    assert png.stat().st_size > 10_000


def test_real_transfer_plots(tmp_path: Path) -> None:
    raw = _raw(_real_timing("deladd"))
    png = offloadreport.plot_rekey(raw, offloadreport.summarize(raw), tmp_path / "real.png")
    assert png is not None and png.stat().st_size > 10_000


def test_no_rekey_plot_without_timing(tmp_path: Path) -> None:
    raw = json.loads((FIXTURES / "bench-offload-raw-tcg.json").read_text())
    s = offloadreport.summarize(raw)
    assert not s.windows and "software windows" not in offloadreport.render(raw, s, {}, "t")
    assert offloadreport.plot_rekey(raw, s, tmp_path / "none.png") is None
