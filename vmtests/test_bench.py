"""``ktlskit bench traffic`` and ``bench offload`` work in a guest: every stream verified,
every figure present, the summaries and plots made from what the guest reported.

Functional only; the figures come from ``ktlskit bench ...``, never from a test.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ktlskit import benchreport, offloadbench, offloadreport, rekeywindows, trafficbench
from ktlskit.ciphers import by_tls13_suite
from ktlskit.hosts import Host
from ktlskit.hosts.call import start


def _run(guest: Host, measure: Callable[[list[str]], dict[str, Any]],
         argv: list[str]) -> dict[str, Any]:
    pending = start(guest, measure, argv, timeout=900)
    raw = pending.result(timeout=960)
    assert "round 1/2" in pending.process.stderr, pending.process.stderr  # progress: stderr
    return raw


def test_traffic_bench_two_rounds(guest: Host, tmp_path: Path) -> None:
    raw = _run(guest, trafficbench.measure,
               ["--bytes", str(2 << 20), "--rekey-every", "16", "--rounds", "2",
                "--crypto-seconds", "1", "--installs", "8"])
    assert len(raw["round_data"]) == 2
    orders = [r["order"] for r in raw["round_data"]]
    assert orders[0] != orders[1] and sorted(orders[0]) == sorted(orders[1])
    for rnd in raw["round_data"]:
        t = rnd["transfers"]
        assert all(t[m]["verified"] and t[m]["nbytes"] == 2 << 20 for m in t), t
        assert t["ktls"]["rekeys"] == 0
        # 128 records, a KeyUpdate after every 16th except the last: 7
        assert t["ktls-rekey"]["rekeys"] == 7 and len(t["ktls-rekey"]["stalls_ms"]) == 7
        assert len(t["ktls-rekey"]["key_updates"]) == 7
        # the same suite both ways: OpenSSL's name for the userspace run, ours for kTLS
        assert by_tls13_suite(t["ssl"]["cipher"]).name == t["ktls"]["cipher"] == raw["cipher"]
        assert len(rnd["key_install_us"]) == 8
        assert set(rnd["limits"]) == {"kernel", "kernel-lib", "openssl",
                                      "openssl-no-aesni"}
        assert all(v["ops"] > 0 for v in rnd["limits"].values()), rnd["limits"]
    # the driver kTLS took is a registered implementation of the AEAD it asked for
    aead = raw["kernel_aead"]
    assert aead["in_use"], aead
    assert set(aead["in_use"]) <= {c["driver"] for c in aead["candidates"]}, aead
    assert raw["round_data"][0]["limits"]["kernel"]["implementation"] in aead["in_use"]
    assert "aes-ni" in raw["openssl"]["ia32cap"]
    summary = benchreport.summarize(raw)
    assert set(summary.rates) == {"ssl", "ktls", "ktls-rekey"}
    assert summary.stall["stall_vs_install"]["n"] == 2
    png = benchreport.plot(raw, summary, tmp_path / "traffic.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    text = benchreport.render(raw, summary, benchreport.host_info(), guest.name)
    assert "kTLS / ssl" in text and "key install" in text


@pytest.mark.offload
def test_offload_bench_two_rounds(guest: Host, tmp_path: Path) -> None:
    raw = _run(guest, offloadbench.measure,
               ["--bytes", str(2 << 20), "--rounds", "2", "--rekey-every", "32"])
    names = [m["name"] for m in raw["modes"]]
    assert names == ["tls1.2-offload", "tls1.2-software", "tls1.3-offload",
                     "tls1.3-software", "tls1.3-offload+rekey/32", "tls1.3-software+rekey/32"]
    for rnd in raw["round_data"]:
        t = rnd["transfers"]
        for name in names:
            if name in raw["unsupported"]:
                assert name not in t
                continue
            assert t[name]["verified"] and t[name]["nbytes"] == 2 << 20, (name, t[name])
            # where the CPU went (cpuwhere): ticks on some CPU, netdevsim's RX in NET_RX
            cpu = t[name]["cpu"]
            assert sum(n for c in cpu.values() for k, n in c.items() if k.islower()) > 0, cpu
            assert sum(c.get("NET_RX", 0) for c in cpu.values()) > 0, cpu
            dev = t[name]["device"]
            want = "device" if "offload" in name else "software"
            assert dev["placement"] == {"tx": want, "rx": want}, (name, dev)
            if want == "device":
                assert dev["tx_tls_encrypted_packets"] > 0 < dev["rx_tls_decrypted_packets"]
            else:
                assert dev["tx_tls_encrypted_bytes"] == 0 == dev["rx_tls_decrypted_bytes"]
        # TLS 1.2 and 1.3 offload work on the default kernel (patches/tls-offload)
        assert {"tls1.2-offload", "tls1.3-offload", "tls1.3-software"} <= set(t), set(t)
        assert t["tls1.3-software+rekey/32"]["rekeys"] == 3  # 128 records / 32, not the last
        if "tls1.3-offload+rekey/32" in t:
            _check_timing(t["tls1.3-offload+rekey/32"])
    # an offloaded direction cannot be rekeyed yet (EOPNOTSUPP): reported, not failed
    for name, why in raw["unsupported"].items():
        assert name.startswith("tls1.3-offload+rekey") and "not supported by this kernel" in why
    summary = offloadreport.summarize(raw)
    labels = [c.label for c in summary.comparisons]
    assert "tls1.2-offload / tls1.2-software" in labels
    assert "tls1.3-offload / tls1.3-software" in labels
    png = offloadreport.plot(raw, summary, tmp_path / "offload.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    rekey_png = offloadreport.plot_rekey(raw, summary, tmp_path / "offload-rekey.png")
    assert rekey_png is None or rekey_png.read_bytes()[:4] == b"\x89PNG"
    assert "not supported" in offloadreport.render(raw, summary, {}, guest.name) \
        or not raw["unsupported"]


def _check_timing(t: dict[str, Any]) -> None:
    """The rekey timing of an offload transfer: three KeyUpdates stamped by the sender, a
    progress point per record read, each port's epochs of this transfer starting with the
    stream. Taking keys itself, the device has an epoch per key each way and TX bytes under
    every key (no software byte on TX); with del + add it may skip keys."""
    timing = t["timing"]
    kus = timing["key_updates_ns"]
    assert len(kus) == 3 and kus == sorted(kus), kus
    assert len(timing["key_starts"]) == 3
    progress = timing["progress"]
    assert len(progress) == 128 and progress[-1][1] == 2 << 20
    assert timing["epochs_lost"] == {"a": 0, "b": 0}
    for side, d in (("a", "tx"), ("b", "rx")):
        own = [e for e in timing["epochs"][side] if e["direction"] == d]
        assert own and own[0]["nbytes"] > 0, (side, timing["epochs"][side])
        assert len(own) == 4, (side, own)
    windows = rekeywindows.transfer_windows(timing)
    assert all(w.ms >= 0 for ws in windows.values() for w in ws), windows
    assert [w.key_update for w in windows["tx"]] == [0, 1, 2], windows["tx"]
    assert all(w.software_bytes == 0 for w in windows["tx"]), windows["tx"]
