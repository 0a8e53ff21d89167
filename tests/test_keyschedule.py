"""Key schedule against RFC 8448 §3 and the TLS 1.2 PRF; kernel crypto_info mapping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from ktlskit import ciphers, keyschedule, uapi
from ktlskit.keyschedule import DirectionState, KeyScheduleError

RFC = {
    k: bytes.fromhex(v)
    for k, v in json.loads(
        (Path(__file__).parent / "fixtures/rfc8448_simple_1rtt.json").read_text()
    ).items()
    if not k.startswith("_")
}
SHA256 = "sha256"
EMPTY_HASH = keyschedule.transcript_hash(SHA256)

# TLS 1.2 PRF vectors posted to the IETF TLS WG list (widely used as P_SHA256/P_SHA384 KATs).
PRF_SHA256 = (
    "9bbe436ba940f017b17652849a71db35",
    "a0ba9f936cda311827a6f796ffd5198c",
    "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9"
    "c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab4fbc91666e9def9b97fce34f796789ba"
    "a48082d122ee42c5a72e5a5110fff70187347b66",
)
PRF_SHA384 = (
    "b80b733d6ceefcdc71566ea48e5567df",
    "cd665cf6a8447dd6ff8b27555edb7465",
    "7b0c18e9ced410ed1804f2cfa34a336a1c14dffb4900bb5fd7942107e81c83cde9ca0faa60be9fe3"
    "4f82b1233c9146a0e534cb400fed2700884f9dc236f80edd8bfa961144c9e8d792eca722a7b32fc3"
    "d416d473ebc2c5fd4abfdad05d9184259b5bf8cd4d90fa0d31e2dec479e4f1a26066f2eea9a69236"
    "a3e52655c9e9aee691c8f3a26854308d5eaa3be85e0990703d73e56f",
)


def test_rfc8448_x25519_shared_secret() -> None:
    """The vectors hang together: the RFC's private keys give its public keys and IKM."""
    client = X25519PrivateKey.from_private_bytes(RFC["client_x25519_private"])
    server = X25519PrivateKey.from_private_bytes(RFC["server_x25519_private"])
    assert client.public_key().public_bytes_raw() == RFC["client_x25519_public"]
    assert server.public_key().public_bytes_raw() == RFC["server_x25519_public"]
    peer = X25519PublicKey.from_public_bytes(RFC["server_x25519_public"])
    assert client.exchange(peer) == RFC["shared_secret"]


def test_rfc8448_early_and_handshake_secret() -> None:
    early = keyschedule.early_secret(SHA256)
    assert early == RFC["early_secret"]
    derived = keyschedule.derive_secret(SHA256, early, "derived", EMPTY_HASH)
    assert derived == RFC["derived_for_handshake"]
    hs = keyschedule.handshake_secret(SHA256, early, RFC["shared_secret"])
    assert hs == RFC["handshake_secret"]


def test_rfc8448_handshake_traffic_secrets_and_keys() -> None:
    hs, th = RFC["handshake_secret"], RFC["transcript_hash_ch_sh"]
    chts = keyschedule.derive_secret(SHA256, hs, "c hs traffic", th)
    shts = keyschedule.derive_secret(SHA256, hs, "s hs traffic", th)
    assert chts == RFC["client_handshake_traffic_secret"]
    assert shts == RFC["server_handshake_traffic_secret"]
    assert keyschedule.traffic_key_iv("aes-gcm-128", shts) == (
        RFC["server_handshake_key"],
        RFC["server_handshake_iv"],
    )
    assert keyschedule.traffic_key_iv("aes-gcm-128", chts) == (
        RFC["client_handshake_key"],
        RFC["client_handshake_iv"],
    )


def test_rfc8448_master_secret() -> None:
    hs = RFC["handshake_secret"]
    assert keyschedule.derive_secret(SHA256, hs, "derived", EMPTY_HASH) == RFC["derived_for_master"]
    assert keyschedule.master_secret(SHA256, hs) == RFC["master_secret"]


@pytest.mark.parametrize("side", ["client", "server"])
def test_rfc8448_application_traffic_keys(side: str) -> None:
    secret = RFC[f"{side}_application_traffic_secret"]
    key, iv = keyschedule.traffic_key_iv(ciphers.AES_GCM_128, secret)
    assert key == RFC[f"{side}_application_key"]
    assert iv == RFC[f"{side}_application_iv"]
    state = DirectionState.from_tls13_secret("aes-gcm-128", secret)
    assert (state.key, state.iv, state.seq, state.secret) == (key, iv, 0, secret)


def test_hkdf_label_encoding() -> None:
    # RFC 8448 prints this info for the handshake "key" expansion: 00 10 09 "tls13 key" 00
    assert keyschedule.hkdf_label("key", b"", 16) == bytes.fromhex("001009746c73313320 6b657900")
    assert keyschedule.hkdf_label(b"iv", b"", 12) == bytes.fromhex("000c08746c733133206976 00")


def test_tls13_crypto_info_mapping_gcm() -> None:
    key, iv12 = RFC["client_application_key"], RFC["client_application_iv"]
    info = keyschedule.tls13_crypto_info("aes-gcm-128", key, iv12, seq=5)
    assert info.version == uapi.TLS_1_3_VERSION
    assert info.cipher_type == uapi.TLS_CIPHER_AES_GCM_128
    assert info.key == key
    assert info.salt == iv12[:4]
    assert info.iv == iv12[4:]
    assert info.rec_seq == bytes(7) + b"\x05"
    assert len(info.pack()) == 40


def test_tls13_crypto_info_mapping_chacha() -> None:
    key, iv12 = bytes(range(32)), bytes(range(100, 112))
    info = keyschedule.tls13_crypto_info("chacha20-poly1305", key, iv12, seq=(1 << 64) - 1)
    assert (info.salt, info.iv) == (b"", iv12)
    assert info.rec_seq == b"\xff" * 8
    assert len(info.pack()) == 56


def test_key_update_derivation() -> None:
    secret = RFC["server_application_traffic_secret"]
    state = DirectionState.from_tls13_secret("aes-gcm-128", secret, seq=41)
    nxt = state.next()
    # RFC 8446 §7.2: HKDF-Expand-Label(secret, "traffic upd", "", Hash.length)
    manual = keyschedule.hkdf_expand(
        SHA256,
        secret,
        (32).to_bytes(2, "big") + bytes([len(b"tls13 traffic upd")]) + b"tls13 traffic upd\x00",
        32,
    )
    assert nxt.secret == manual == keyschedule.next_traffic_secret("aes-gcm-128", secret)
    assert (nxt.key, nxt.iv) == keyschedule.traffic_key_iv("aes-gcm-128", manual)
    assert nxt.seq == 0 and nxt.generation == 1
    assert nxt.next().generation == 2
    assert nxt.crypto_info().rec_seq == bytes(8)


def test_sha384_and_sm3_suites_use_their_hash_length() -> None:
    s384 = DirectionState.from_tls13_secret("aes-gcm-256", bytes(48))
    assert len(s384.key) == 32 and len(s384.next().secret or b"") == 48
    sm3 = DirectionState.from_tls13_secret("sm4-gcm", bytes(32))
    assert len(sm3.key) == 16 and len(sm3.next().secret or b"") == 32
    with pytest.raises(KeyScheduleError, match="48 bytes"):
        DirectionState.from_tls13_secret("aes-gcm-256", bytes(32))


def test_aria_has_no_tls13_schedule() -> None:
    with pytest.raises(KeyScheduleError, match=r"no TLS 1\.3 cipher suite"):
        keyschedule.traffic_key_iv("aria-gcm-128", bytes(32))


@pytest.mark.parametrize(("hash_name", "vector"), [("sha256", PRF_SHA256), ("sha384", PRF_SHA384)])
def test_tls12_prf_vectors(hash_name: str, vector: tuple[str, str, str]) -> None:
    secret, seed, expected = (bytes.fromhex(v) for v in vector)
    out = keyschedule.tls12_prf(hash_name, secret, "test label", seed, len(expected))
    assert out == expected


def test_tls12_key_block_split() -> None:
    master, cr, sr = bytes(range(48)), bytes(32), b"\x01" * 32
    block = keyschedule.tls12_key_block("aes-gcm-256", master, cr, sr)
    raw = keyschedule.tls12_prf("sha384", master, "key expansion", sr + cr, 2 * (32 + 4))
    assert block.client_write_key == raw[:32]
    assert block.server_write_key == raw[32:64]
    assert block.client_write_iv == raw[64:68]
    assert block.server_write_iv == raw[68:72]
    chacha = keyschedule.tls12_key_block("chacha20-poly1305", master, cr, sr)
    assert len(chacha.client_write_iv) == len(chacha.server_write_iv) == 12


def test_tls12_crypto_info_gcm_and_chacha() -> None:
    gcm = keyschedule.tls12_crypto_info("aes-gcm-128", bytes(16), b"SALT", seq=1)
    assert gcm.version == uapi.TLS_1_2_VERSION
    assert (gcm.salt, gcm.iv, gcm.rec_seq) == (
        b"SALT",
        (1).to_bytes(8, "big"),
        (1).to_bytes(8, "big"),
    )
    explicit = keyschedule.tls12_crypto_info("aes-ccm-128", bytes(16), b"SALT", 3, b"E" * 8)
    assert explicit.iv == b"E" * 8 and explicit.rec_seq_int == 3
    chacha = keyschedule.tls12_crypto_info("chacha20-poly1305", bytes(32), b"I" * 12, seq=9)
    assert (chacha.salt, chacha.iv, chacha.rec_seq_int) == (b"", b"I" * 12, 9)
    state = DirectionState.from_tls12("aes-gcm-128", bytes(16), b"SALT", seq=1)
    assert state.crypto_info() == gcm
    with pytest.raises(KeyScheduleError, match="fixed IV must be 4 bytes"):
        keyschedule.tls12_crypto_info("aes-gcm-128", bytes(16), bytes(12))
    with pytest.raises(KeyScheduleError, match="no explicit nonce"):
        keyschedule.tls12_crypto_info("chacha20-poly1305", bytes(32), bytes(12), 0, bytes(8))


def test_direction_state_refusals() -> None:
    tls12 = DirectionState.from_tls12("aes-gcm-128", bytes(16), bytes(4))
    assert not tls12.can_rekey
    with pytest.raises(KeyScheduleError, match=r"TLS 1\.2 has no KeyUpdate"):
        tls12.next()
    keyed = DirectionState(ciphers.AES_GCM_128, uapi.TLS_1_3_VERSION, bytes(16), bytes(12))
    with pytest.raises(KeyScheduleError, match="no traffic secret"):
        keyed.next()
    with pytest.raises(KeyScheduleError, match="key must be 16 bytes"):
        DirectionState(ciphers.AES_GCM_128, uapi.TLS_1_3_VERSION, bytes(15), bytes(12))
    with pytest.raises(KeyScheduleError, match="IV must be 12 bytes"):
        DirectionState(ciphers.AES_GCM_128, uapi.TLS_1_3_VERSION, bytes(16), bytes(4))
    with pytest.raises(KeyScheduleError, match="64-bit"):
        DirectionState(ciphers.AES_GCM_128, uapi.TLS_1_3_VERSION, bytes(16), bytes(12), 1 << 64)
    with pytest.raises(KeyScheduleError, match="unsupported TLS version"):
        DirectionState(ciphers.AES_GCM_128, 0x0302, bytes(16), bytes(12))
    with pytest.raises(KeyScheduleError, match="unknown hash"):
        keyschedule.hash_len("md5")
