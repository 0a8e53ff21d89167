"""Cipher table: names, kernel numbers, sizes, suites, and the userspace AEADs."""

from __future__ import annotations

import os

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from ktlskit import ciphers, uapi
from ktlskit.errors import KtlskitError

# RFC 8998 appendix A.1/A.2: SM4-GCM and SM4-CCM test vectors (same key/IV/AAD/plaintext)
RFC8998_KEY = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
RFC8998_IV = bytes.fromhex("00001234567800000000ABCD")
RFC8998_AAD = bytes.fromhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2")
RFC8998_PLAINTEXT = bytes.fromhex(
    "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD"
    "EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA"
)
RFC8998_GCM_CT = bytes.fromhex(
    "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735"
    "D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D"
)
RFC8998_GCM_TAG = bytes.fromhex("83DE3541E4C2B58177E065A9BF7B62EC")
RFC8998_CCM_CT = bytes.fromhex(
    "48AF93501FA62ADBCD414CCE6034D895DDA1BF8F132F042098661572E7483094"
    "FD12E518CE062C98ACEE28D95DF4416BED31A2F04476C18BB40C84A74B97DC5B"
)
RFC8998_CCM_TAG = bytes.fromhex("16842D4FA186F56AB33256971FA110F4")

EXPECTED = {
    # name: (cipher_type, key, iv, salt, hash, TLS 1.3 suite)
    "aes-gcm-128": (51, 16, 8, 4, "sha256", 0x1301),
    "aes-gcm-256": (52, 32, 8, 4, "sha384", 0x1302),
    "aes-ccm-128": (53, 16, 8, 4, "sha256", 0x1304),
    "chacha20-poly1305": (54, 32, 12, 0, "sha256", 0x1303),
    "sm4-gcm": (55, 16, 8, 4, "sm3", 0x00C6),
    "sm4-ccm": (56, 16, 8, 4, "sm3", 0x00C7),
    "aria-gcm-128": (57, 16, 8, 4, "sha256", None),
    "aria-gcm-256": (58, 32, 8, 4, "sha384", None),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_table_entries(name: str) -> None:
    spec = ciphers.lookup(name)
    cipher_type, key, iv, salt, hash_name, suite = EXPECTED[name]
    assert spec.name == name
    assert spec.cipher_type == cipher_type
    assert (spec.key_size, spec.iv_size, spec.salt_size) == (key, iv, salt)
    assert spec.rec_seq_size == 8
    assert spec.tag_size == 16
    assert spec.hash_name == hash_name
    assert spec.tls13_suite == suite
    assert spec.hash_len == {"sha256": 32, "sha384": 48, "sm3": 32}[hash_name]
    assert ciphers.by_cipher_type(cipher_type) is spec
    if suite is not None:
        assert ciphers.by_tls13_suite(suite) is spec
        assert spec.tls13_suite_name is not None
        assert ciphers.by_tls13_suite(spec.tls13_suite_name) is spec
    sizes = uapi.CIPHER_FIELD_SIZES[cipher_type]
    assert (sizes.key, sizes.iv, sizes.salt) == (key, iv, salt)


def test_all_eight_kernel_ciphers_present_in_order() -> None:
    assert [c.cipher_type for c in ciphers.ALL] == list(range(51, 59))
    assert ciphers.names() == tuple(EXPECTED)


def test_tls12_nonce_shapes() -> None:
    assert ciphers.AES_GCM_128.tls12_explicit_nonce_size == 8
    assert ciphers.AES_GCM_128.tls12_fixed_iv_size == 4
    assert ciphers.CHACHA20_POLY1305.tls12_explicit_nonce_size == 0
    assert ciphers.CHACHA20_POLY1305.tls12_fixed_iv_size == 12


def test_kernel_tls13_rules() -> None:
    # validate_crypto_info() in net/tls/tls_main.c: ARIA only with TLS 1.2
    assert {c.name for c in ciphers.ALL if not c.kernel_tls13} == {"aria-gcm-128", "aria-gcm-256"}


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ciphers.UnknownCipherError) as info:
        ciphers.lookup("aes-gcm-192")
    message = str(info.value)
    assert "aes-gcm-192" in message
    for name in EXPECTED:
        assert name in message
    assert isinstance(info.value, KtlskitError)


def test_unknown_number_and_suite() -> None:
    with pytest.raises(ciphers.UnknownCipherError, match="cipher_type 59"):
        ciphers.by_cipher_type(59)
    with pytest.raises(ciphers.UnknownCipherError, match="0x1305"):
        ciphers.by_tls13_suite(0x1305)  # TLS_AES_128_CCM_8_SHA256: 8-byte tag, not kTLS


def test_lookup_passes_a_spec_through() -> None:
    assert ciphers.lookup(ciphers.SM4_GCM) is ciphers.SM4_GCM


@pytest.mark.parametrize("spec", [ciphers.ARIA_GCM_128, ciphers.ARIA_GCM_256])
def test_aria_not_available_in_userspace(spec: ciphers.CipherSpec) -> None:
    assert not hasattr(algorithms, "ARIA"), "cryptography gained ARIA: wire it up"
    assert not spec.userspace_available
    with pytest.raises(ciphers.CipherUnavailableError, match="not available in userspace"):
        spec.aead(bytes(spec.key_size))
    assert spec not in ciphers.available()


def test_available_ciphers() -> None:
    assert [c.name for c in ciphers.available()] == list(EXPECTED)[:6]


def test_aead_rejects_wrong_key_size() -> None:
    with pytest.raises(ciphers.CipherError, match="must be 16 bytes"):
        ciphers.AES_GCM_128.aead(bytes(32))


@pytest.mark.parametrize("spec", ciphers.available(), ids=lambda c: c.name)
def test_aead_round_trip_and_tamper(spec: ciphers.CipherSpec) -> None:
    aead = spec.aead(os.urandom(spec.key_size))
    nonce, aad, msg = os.urandom(12), os.urandom(13), os.urandom(100)
    sealed = aead.encrypt(nonce, msg, aad)
    assert len(sealed) == len(msg) + spec.tag_size
    assert aead.decrypt(nonce, sealed, aad) == msg
    flipped = bytes([sealed[0] ^ 1]) + sealed[1:]
    for bad in (flipped, sealed[:-1] + bytes([sealed[-1] ^ 0x80])):
        with pytest.raises(InvalidTag):
            aead.decrypt(nonce, bad, aad)
    with pytest.raises(InvalidTag):
        aead.decrypt(nonce, sealed, aad + b"x")
    with pytest.raises(InvalidTag):
        aead.decrypt(nonce, sealed[:5], aad)


def test_sm4_gcm_rfc8998_vector() -> None:
    aead = ciphers.SM4_GCM.aead(RFC8998_KEY)
    sealed = aead.encrypt(RFC8998_IV, RFC8998_PLAINTEXT, RFC8998_AAD)
    assert sealed == RFC8998_GCM_CT + RFC8998_GCM_TAG
    assert aead.decrypt(RFC8998_IV, sealed, RFC8998_AAD) == RFC8998_PLAINTEXT


def test_sm4_ccm_rfc8998_vector() -> None:
    aead = ciphers.SM4_CCM.aead(RFC8998_KEY)
    sealed = aead.encrypt(RFC8998_IV, RFC8998_PLAINTEXT, RFC8998_AAD)
    assert sealed == RFC8998_CCM_CT + RFC8998_CCM_TAG
    assert aead.decrypt(RFC8998_IV, sealed, RFC8998_AAD) == RFC8998_PLAINTEXT


@pytest.mark.parametrize(
    ("msg_len", "aad_len"), [(0, 0), (0, 13), (1, 0), (16, 16), (100, 13), (4099, 70000)]
)
def test_ccm_construction_agrees_with_aesccm(msg_len: int, aad_len: int) -> None:
    """Our CCM over AES must equal cryptography's AESCCM, so SM4-CCM is the same construction."""
    key, nonce = os.urandom(16), os.urandom(12)
    msg, aad = os.urandom(msg_len), os.urandom(aad_len)
    ours = ciphers.CcmOverBlockCipher(algorithms.AES, key)
    theirs = AESCCM(key, tag_length=16)
    sealed = ours.encrypt(nonce, msg, aad)
    assert sealed == theirs.encrypt(nonce, msg, aad)
    assert ours.decrypt(nonce, sealed, aad) == msg
