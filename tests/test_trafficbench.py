"""The traffic benchmark's own machinery: stream, digest, the userspace (ssl) transfer.

kTLS transfers need a kTLS kernel; vmtests/test_bench_traffic.py runs them in a guest.
"""

import hashlib
from pathlib import Path

import pytest

from ktlskit import trafficbench
from ktlskit.certs import self_signed_pem


def test_expected_digest_matches_the_stream_the_sender_writes() -> None:
    block = trafficbench.stream_block()
    n = 3 * trafficbench.RECORD + 100
    assert trafficbench.expected_digest(n) == hashlib.sha256(block * 3 + block[:100]).hexdigest()


def test_ssl_transfer_is_verified_end_to_end(tmp_path: Path) -> None:
    res = trafficbench.transfer("ssl", (1 << 20) + 7, 0, self_signed_pem(tmp_path))
    assert res.verified and res.nbytes == (1 << 20) + 7
    assert res.cipher.startswith("TLS_") and res.rekeys == 0 and res.mbytes_per_s > 0


def test_unknown_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(trafficbench.BenchError, match="unknown mode"):
        trafficbench.transfer("quic", 100, 0, tmp_path / "none.pem")
