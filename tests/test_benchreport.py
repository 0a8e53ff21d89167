"""The host-side summaries of bench traffic/offload: what is derived from the guest's rounds.

Real guest outputs (a 2-round run of each bench, captured in a TCG guest on the default
kernel) are kept in tests/fixtures/bench-*-raw-tcg.json; the hand-made rounds below pin the
arithmetic.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ktlskit import benchreport, offloadreport

FIXTURES = Path(__file__).parent / "fixtures"


def _transfer(rate: float, stalls: list[float] | None = None) -> dict[str, Any]:
    return {"mbytes_per_s": rate, "verified": True, "rekeys": len(stalls or []),
            "stalls_ms": stalls or [], "gap_ms": 0.5, "samples": [[0.0, 0], [1.0, 10**6]],
            "key_updates": [0.5] * len(stalls or [])}


def _limit(rate: float, impl: str) -> dict[str, Any]:
    return {"implementation": impl, "mbytes_per_s": rate, "ops": 10, "record": 16384,
            "seconds": 1.0}


def _traffic_raw(ssl: list[float], ktls: list[float]) -> dict[str, Any]:
    rounds = []
    for s, k in zip(ssl, ktls, strict=True):
        rounds.append({
            "order": ["ssl", "ktls"],
            "transfers": {"ssl": _transfer(s), "ktls": _transfer(k),
                          "ktls-rekey": _transfer(k * 0.9, [2.0, 4.0, 6.0])},
            "limits": {"kernel": _limit(20.0, "generic-gcm-aesni-avx"),
                       "kernel-lib": _limit(10.0, "gcm-aes-lib"),
                       "openssl": _limit(22.0, "openssl"),
                       "openssl-no-aesni": _limit(7.0, "openssl (masked)")},
            "key_install_us": [100.0, 200.0, 300.0]})
    return {"kernel": "7.3.4", "bytes": 1 << 20, "rekey_every": 16, "rounds": len(ssl),
            "cipher": "aes-gcm-256", "record": 16384, "crypto_seconds": 1,
            "cpu": {"model": "QEMU TCG CPU version 2.5+", "flags": ["aes"], "cpus": 2},
            "kernel_aead": {"name": "gcm(aes)", "in_use": ["generic-gcm-aesni-avx"],
                            "candidates": [{"driver": "generic-gcm-aesni-avx", "priority": 500},
                                           {"driver": "gcm-aes-lib", "priority": 110}]},
            "openssl": {"version": "OpenSSL 3.0.19 27 Jan 2026", "ia32cap": {"aes-ni": True},
                        "ia32cap_raw": "OPENSSL_ia32cap=0x2:0x0"},
            "round_data": rounds}


def test_traffic_ratios_fractions_and_the_stall_floor() -> None:
    raw = _traffic_raw([8.0, 4.0, 8.0], [6.0, 3.0, 6.4])
    s = benchreport.summarize(raw)
    assert s.rates["ktls"].median == 6.0 and s.rates["ssl"].min == 4.0
    ktls_vs_ssl = s.comparisons[0]
    assert ktls_vs_ssl.label == "kTLS / ssl"
    assert ktls_vs_ssl.ratios == (0.75, 0.75, 0.8)  # per round: the slow round 2 cancels out
    assert ktls_vs_ssl.warning is None
    assert s.fractions["ktls"].spread.median == pytest.approx(0.3)  # 6 / 20
    assert s.fractions["ssl"].spread.median == pytest.approx(8 / 22)
    # stall median 4 ms, key install median 0.2 ms: 20x
    assert s.stall["stall_vs_install"]["median"] == pytest.approx(20.0)
    assert s.stall["stall_ms"]["median"] == 4.0
    labels = [c.label for c in s.comparisons]
    assert "crypto alone: kernel AEAD / openssl" in labels
    assert "openssl / openssl without AES-NI" in labels


def test_traffic_spread_warning_reaches_the_text() -> None:
    raw = _traffic_raw([8.0, 8.0, 8.0], [7.0, 8.0, 9.6])  # 0.875 .. 1.2, median 1.0
    s = benchreport.summarize(raw)
    assert any(w.startswith("kTLS / ssl:") for w in s.warnings)
    text = benchreport.render(raw, s, {"loadavg_before": [1.0], "loadavg_after": [2.0]}, "tcg")
    assert "warning: kTLS / ssl: the per-round values span 0.88..1.20" in text
    assert "generic-gcm-aesni-avx" in text and "20.0x the bare setsockopt(TLS_RX)" in text


def test_traffic_plot_is_written(tmp_path: Path) -> None:
    raw = _traffic_raw([8.0, 4.0], [6.0, 3.0])
    png = benchreport.plot(raw, benchreport.summarize(raw), tmp_path / "t.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def _offload_raw() -> dict[str, Any]:
    modes = [{"version": v, "offload": o, "rekey_every": 0,
              "name": f"tls{v}-{'offload' if o else 'software'}"}
             for v in ("1.2", "1.3") for o in (True, False)]
    dev = {"tx_share": 1.0, "rx_share": 0.98}
    rounds = [{"order": [m["name"] for m in modes], "transfers": {
        "tls1.2-offload": {**_transfer(o), "device": dev},
        "tls1.2-software": {**_transfer(s), "device": {"tx_share": 0.0, "rx_share": 0.0}},
        "tls1.3-software": {**_transfer(s), "device": {"tx_share": 0.0, "rx_share": 0.0}}}}
        for o, s in ((3.0, 10.0), (3.3, 11.0))]
    return {"kernel": "7.3.4", "bytes": 1 << 20, "rounds": 2, "cipher": "aes-gcm-128",
            "modes": modes, "kernel_aead": {"name": "gcm(aes)", "in_use": ["x"]},
            "round_data": rounds,
            "unsupported": {"tls1.3-offload": "not supported by this kernel (TX software)"}}


def test_offload_ratio_per_version_and_unsupported_rows(tmp_path: Path) -> None:
    raw = _offload_raw()
    s = offloadreport.summarize(raw)
    assert [c.label for c in s.comparisons] == ["tls1.2-offload / tls1.2-software"]
    assert s.comparisons[0].ratios == (0.3, 0.3)
    assert s.rx_share["tls1.2-offload"].median == 0.98
    text = offloadreport.render(raw, s, {}, "tcg")
    assert "tls1.3-offload   not supported by this kernel (TX software)" in text
    assert "tls1.2-offload / tls1.2-software: 0.30x (0.30..0.30 over 2 rounds)" in text
    png = offloadreport.plot(raw, s, tmp_path / "o.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("name,module", [("traffic", benchreport), ("offload", offloadreport)])
def test_real_guest_outputs_summarise(name: str, module: Any, tmp_path: Path) -> None:
    raw = json.loads((FIXTURES / f"bench-{name}-raw-tcg.json").read_text())
    s = module.summarize(raw)
    assert s.rates and all(sp.n == raw["rounds"] for sp in s.rates.values())
    assert module.render(raw, s, {}, "tcg")
    assert module.plot(raw, s, tmp_path / f"{name}.png").is_file()
