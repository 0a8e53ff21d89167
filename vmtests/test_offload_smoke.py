"""The quick answer after an edit to netdevsim or net/tls (``ktlskit retest``, marker ``smoke``):
the fake device offloads a short TLS stream both ways and the data arrives intact."""

from __future__ import annotations

import pytest

from ktlskit.hosts import Host
from ktlskit.hosts.call import call
from ktlskit.offload.run import run_cases

pytestmark = [pytest.mark.offload, pytest.mark.smoke, pytest.mark.debug]


def test_offload_smoke(guest: Host) -> None:
    f = call(guest, run_cases, ["bulk:aes-gcm-128"], 262144, timeout=600)["bulk:aes-gcm-128"]
    assert "exception" not in f, f
    assert f["bulk"]["up_ok"] and f["bulk"]["down_ok"], f["bulk"]
    for side in ("a", "b"):
        d = f["delta"][side]
        assert d["TlsTxDevice"] == 1 and d["TlsRxDevice"] == 1, d
        assert d["TlsDecryptError"] == 0, d
        eth = f["delta"][f"{side}_eth"]
        assert eth["tx_tls_encrypted_bytes"] >= 262144, eth
        assert eth["rx_tls_decrypted_bytes"] > 0, eth
        assert eth["rx_tls_err"] == 0, eth
