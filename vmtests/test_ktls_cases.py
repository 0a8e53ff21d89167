"""Software kTLS in the guest kernel: versions x ciphers, rekey, errors, counters.

Every case runs in the guest (``ktlskit.cases``) and reports facts plus the
/proc/net/tls_stat deltas around it; the assertions live here.
"""

from typing import Any

import pytest

from ktlskit.ciphers import ALL

VERSIONS = ("1.2", "1.3")
CIPHERS = tuple(c.name for c in ALL)
TLS13_CIPHERS = tuple(c.name for c in ALL if c.kernel_tls13)
USERSPACE = tuple(c.name for c in ALL if c.userspace_available)


def _supported(facts: dict[str, Any], version: str, cipher: str) -> dict[str, Any]:
    """Skip, saying so, only when the kernel itself refused the cipher."""
    exc = facts.get("exception")
    if exc in ("KtlsNotSupportedError", "KtlsConfigError"):
        pytest.skip(f"the kernel refuses {cipher} with TLS {version}: {facts['message']}")
    assert exc is None, facts
    return facts


@pytest.mark.parametrize("cipher", CIPHERS)
@pytest.mark.parametrize("version", VERSIONS)
def test_data_both_ways_and_record_types(ktls_pair: Any, version: str, cipher: str) -> None:
    f = _supported(ktls_pair("data", version, cipher), version, cipher)
    assert f["a_to_b"] and f["b_to_a"]
    assert f["other_type"] == 21 and f["other_data"] == "0100"
    d = f["tls_stat_delta"]
    assert d.get("TlsTxSw") == 2 and d.get("TlsRxSw") == 2, d
    assert not d.get("TlsDecryptError"), d


@pytest.mark.parametrize("cipher", USERSPACE)
@pytest.mark.parametrize("version", VERSIONS)
def test_kernel_records_match_the_reference_layer(ktls_pair: Any, version: str,
                                                  cipher: str) -> None:
    f = _supported(ktls_pair("oracle", version, cipher), version, cipher)
    assert f["kernel_to_ref"], "userspace could not decrypt what the kernel sent"
    assert f["ref_to_kernel"], "the kernel did not decrypt what userspace sent"
    assert f["records_from_kernel"] >= 3


@pytest.mark.parametrize("cipher", TLS13_CIPHERS)
def test_single_rekey_each_cipher(ktls_pair: Any, cipher: str) -> None:
    f = _supported(ktls_pair("rekey", "1.3", cipher), "1.3", cipher)
    assert f["ok"] and f["a_sent"] == 1 and f["b_received"] == 1
    d = f["tls_stat_delta"]
    assert d.get("TlsTxRekeyOk") == 1 and d.get("TlsRxRekeyOk") == 1, d
    assert d.get("TlsRxRekeyReceived") == 1, d
    assert f["readback_matches"], "getsockopt(TLS_TX) after rekey shows the old key"


def test_hundred_rekeys_in_a_row(ktls_pair: Any) -> None:
    f = ktls_pair("rekey", "1.3", "aes-gcm-128", count=100)
    assert f["ok"] and f["a_sent"] == 100 and f["b_received"] == 100, f
    d = f["tls_stat_delta"]
    assert d.get("TlsTxRekeyOk") == 100 and d.get("TlsRxRekeyOk") == 100, d
    assert not d.get("TlsTxRekeyError") and not d.get("TlsRxRekeyError"), d


def test_update_requested_is_answered(ktls_pair: Any) -> None:
    f = ktls_pair("rekey", "1.3", "chacha20-poly1305", count=3, requested=True)
    assert "exception" not in f and f["ok"], f
    assert (f["a_sent"], f["b_received"], f["b_sent"], f["a_received"]) == (3, 3, 3, 3)
    d = f["tls_stat_delta"]
    assert d.get("TlsTxRekeyOk") == 6 and d.get("TlsRxRekeyOk") == 6, d


def test_tls12_rekey_is_ebusy(ktls_pair: Any) -> None:
    f = ktls_pair("tls12-rekey", "1.2", "aes-gcm-128")
    assert f["error"] == "KtlsRekeyError", f
    assert "EBUSY" in f["message"] and "TLS 1.2" in f["message"], f
    assert f["tls_stat_delta"].get("TlsTxRekeyError") == 1, f


def test_key_expired_while_update_pending_and_poll(ktls_pair: Any) -> None:
    f = ktls_pair("keyexpired", "1.3", "aes-gcm-256")
    assert f["first_type"] == 22
    assert f["error_while_pending"] == "KtlsKeyExpiredError", f
    assert f["pollin_while_pending"] is False, "poll() must not report POLLIN before rekey"
    assert f["pollin_after_install"] is True
    assert f["data"] == "new-key data"
    assert f["tls_stat_delta"].get("TlsRxRekeyReceived") == 1


def test_keyupdate_queued_behind_data_is_read(ktls_pair: Any) -> None:
    """The library reads a KeyUpdate the kernel already decrypted and queued on rx_list."""
    f = ktls_pair("queued-keyupdate", "1.3", "aes-gcm-128")
    assert f["first"] == [23, "before"], f
    assert f["second_type"] == 22, f
    assert f["third"] == [23, "after"], f
    assert f["tls_stat_delta"].get("TlsRxRekeyOk") == 1, f


# Found while chasing the bidirectional rekey stall: 7.3.4's tls_sk_poll() tests
# key_update_pending before rx_list, so once recvmsg has decrypted a KeyUpdate behind
# application data (and queued it on rx_list) poll() reports no POLLIN although the next read
# returns that very KeyUpdate; a poll-driven reader hangs. patches/tls-fixes/0001 fixes it:
# this test fails on a kernel without that fix, which is the point.
def test_poll_reports_a_queued_keyupdate(ktls_pair: Any) -> None:
    f = ktls_pair("queued-keyupdate", "1.3", "aes-gcm-128")
    assert f["second_type"] == 22, f
    assert f["pollin_with_keyupdate_queued"] is True, \
        f"poll() hides a KeyUpdate queued on rx_list (kernel without patches/tls-fixes): {f}"


def test_tampered_record_is_a_decrypt_error(ktls_pair: Any) -> None:
    f = ktls_pair("tamper", "1.3", "aes-gcm-128")
    assert f["error"] == "KtlsDecryptError", f
    assert f["tls_stat_delta"].get("TlsDecryptError") == 1, f


def test_tampered_tls12_record_too(ktls_pair: Any) -> None:
    f = ktls_pair("tamper", "1.2", "aes-ccm-128")
    assert f["error"] == "KtlsDecryptError", f
    assert f["tls_stat_delta"].get("TlsDecryptError") == 1, f


def test_no_pad_violation_is_counted_and_survived(ktls_pair: Any) -> None:
    f = ktls_pair("nopad", "1.3", "aes-gcm-128")
    assert f["data"] == "paddedplain!", f
    assert f["no_pad_readback"] is True
    d = f["tls_stat_delta"]
    assert d.get("TlsRxNoPadViolation") == 1, d
    assert d.get("TlsDecryptRetry") == 1, d


def test_keyupdate_on_the_wire(ktls_pair: Any) -> None:
    f = ktls_pair("keyupdate-wire", "1.3", "aes-gcm-128")
    assert f["first"] == [22, f["expected_body"]]
    assert f["second"] == [23, "after"]
