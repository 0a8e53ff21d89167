"""Parsing what the crypto limit reads, on real outputs captured in a TCG guest (QEMU 7.2
``-cpu max``, Linux 7.3.4 with the default profile, OpenSSL 3.0.19)."""

from pathlib import Path

import pytest

from ktlskit import cryptolimit
from ktlskit.cryptolimit import CryptoAlg, CryptoLimitError

FIXTURES = Path(__file__).parent / "fixtures"


def _fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_proc_crypto_entries_and_the_gcm_aes_candidates() -> None:
    algs = cryptolimit.parse_proc_crypto(_fixture("proc-crypto-7.3-tcg-max.txt"))
    assert len(algs) == 37
    best = cryptolimit.candidates(algs, "gcm(aes)")
    # QEMU 7.2's TCG "max" CPU has VAES but not VPCLMULQDQ: no vaes-avx2 driver registered
    assert [(a.driver, a.priority) for a in best] == [
        ("generic-gcm-aesni-avx", 500), ("generic-gcm-aesni", 400), ("gcm-aes-lib", 110)]
    assert all(a.type == "aead" and a.selftest == "passed" for a in best)
    assert best[0].fields["ivsize"] == "12"


def test_internal_and_failed_entries_are_no_candidates() -> None:
    text = _fixture("proc-crypto-7.3-tcg-max.txt")
    text += ("\nname         : gcm(aes)\ndriver       : __gcm-aes-internal\nmodule       : kernel\n"
             "priority     : 900\nrefcnt       : 1\nselftest     : passed\ninternal     : yes\n"
             "type         : aead\n\nname         : gcm(aes)\ndriver       : broken\n"
             "priority     : 950\nrefcnt       : 1\nselftest     : unknown\ninternal     : no\n")
    best = cryptolimit.candidates(cryptolimit.parse_proc_crypto(text), "gcm(aes)")
    assert best[0].driver == "generic-gcm-aesni-avx"


def test_the_driver_in_use_is_the_one_whose_refcnt_rose() -> None:
    before = cryptolimit.parse_proc_crypto(_fixture("proc-crypto-7.3-tcg-max.txt"))
    after = [CryptoAlg(a.name, a.driver, a.priority, a.refcnt + 2, a.type, a.internal,
                       a.selftest) if a.driver == "generic-gcm-aesni-avx" else a for a in before]
    after.append(CryptoAlg("gcm(aes)", "gcm_base(ctr(aes-lib),ghash-lib)", 100, 1, "aead",
                           False, "passed"))
    assert cryptolimit.refcnt_risers(before, after, "gcm(aes)") == [
        "generic-gcm-aesni-avx", "gcm_base(ctr(aes-lib),ghash-lib)"]
    assert cryptolimit.refcnt_risers(before, after, "gcm-aes-lib") == []
    assert cryptolimit.refcnt_risers(before, before, "gcm(aes)") == []


def test_openssl_speed_machine_readable_output() -> None:
    alg, size, ops, secs = cryptolimit.parse_speed_mr(
        _fixture("openssl-speed-mr-aes-256-gcm-tcg.txt"))
    assert (alg, size, ops, secs) == ("AES-256-GCM", 16384, 1326, 0.99)
    rate = cryptolimit.AeadRate("openssl", size, ops, secs)
    assert rate.mbytes_per_s == pytest.approx(21.945, abs=0.001)  # = the +F line's bytes/s
    _, _, ops_slow, _ = cryptolimit.parse_speed_mr(
        _fixture("openssl-speed-mr-aes-256-gcm-no-aesni-tcg.txt"))
    assert ops_slow == 432


def test_openssl_speed_garbage_is_an_error() -> None:
    with pytest.raises(CryptoLimitError, match="cannot parse"):
        cryptolimit.parse_speed_mr("Error setting cipher aes-999-gcm\n")


def test_openssl_ia32cap_names_the_instructions() -> None:
    caps = cryptolimit.parse_ia32cap(_fixture("openssl-version-c-tcg.txt"))
    assert caps == {"aes-ni": True, "pclmulqdq": True, "avx": True, "avx2": True,
                    "vaes": True, "vpclmulqdq": False}
    masked = cryptolimit.parse_ia32cap("OPENSSL_ia32cap=0xfcd832090fcbfffd:0x8001021c01d843a9")
    assert not masked["aes-ni"] and not masked["pclmulqdq"]
    with pytest.raises(CryptoLimitError, match="no OPENSSL_ia32cap"):
        cryptolimit.parse_ia32cap("OpenSSL 3.0.19")


def test_cpuinfo_flags_the_kernel_sees() -> None:
    info = cryptolimit.parse_cpuinfo(_fixture("cpuinfo-tcg-max.txt"))
    assert info == {"model": "QEMU TCG CPU version 2.5+",
                    "flags": ["aes", "pclmulqdq", "avx", "avx2", "vaes"]}


def test_every_ktls_cipher_has_a_kernel_aead_name() -> None:
    from ktlskit.ciphers import names

    assert set(cryptolimit.KERNEL_AEAD) == set(names()) == set(cryptolimit.KEY_SIZE)
    assert cryptolimit.KERNEL_AEAD["aes-gcm-256"] == "gcm(aes)"


def test_unknown_openssl_cipher_is_refused_before_running_anything() -> None:
    with pytest.raises(CryptoLimitError, match="no openssl speed name"):
        cryptolimit.openssl_rate("sm4-ccm", 16384, 1)
