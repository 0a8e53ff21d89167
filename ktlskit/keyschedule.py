"""TLS 1.3 (RFC 8446 §7) and TLS 1.2 (RFC 5246 §6.3) key material, mapped to kernel crypto_info.

Kernel mapping (``tls_set_sw_offload`` builds the 12-byte nonce base as ``salt || iv``):

* TLS 1.3, and ChaCha20-Poly1305 in TLS 1.2: the per-record nonce is ``iv12 XOR seq`` with
  ``iv12`` the traffic IV.  For AES/SM4/ARIA the kernel wants ``salt = iv12[:4]`` and
  ``iv = iv12[4:]``; ChaCha20 has ``iv = iv12`` and an empty salt.
* TLS 1.2 GCM/CCM: the nonce is ``salt || explicit`` where ``salt`` is the 4-byte implicit IV
  from the key block and ``explicit`` the 8 bytes carried in each record.  The struct's ``iv``
  is the explicit nonce the kernel puts on its next TX record and increments per record
  (``tls_advance_record_sn``); by convention we start it at the record sequence number.
* ``rec_seq`` is the 8-byte big-endian number of the next record.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as chmac

from ktlskit import uapi
from ktlskit.ciphers import NONCE_SIZE, CipherSpec, lookup
from ktlskit.errors import KtlskitError

LABEL_PREFIX: Final = b"tls13 "
KEY_UPDATE_LABEL: Final = b"traffic upd"
MAX_SEQ: Final = (1 << 64) - 1


class KeyScheduleError(KtlskitError):
    """Key material is inconsistent (wrong sizes, wrong version for the operation)."""


def _hash(hash_name: str) -> hashes.HashAlgorithm:
    algos: dict[str, type[hashes.HashAlgorithm]] = {
        "sha256": hashes.SHA256,
        "sha384": hashes.SHA384,
        "sm3": hashes.SM3,
    }
    try:
        return algos[hash_name]()
    except KeyError:
        raise KeyScheduleError(f"unknown hash {hash_name!r}; valid: {', '.join(algos)}") from None


def hash_len(hash_name: str) -> int:
    """Digest size of ``hash_name`` ("sha256", "sha384" or "sm3")."""
    return _hash(hash_name).digest_size


def hmac_digest(hash_name: str, key: bytes, data: bytes) -> bytes:
    """HMAC(key, data) with ``hash_name``."""
    mac = chmac.HMAC(key, _hash(hash_name))
    mac.update(data)
    return mac.finalize()


def transcript_hash(hash_name: str, *messages: bytes) -> bytes:
    """Hash of the concatenated handshake messages (RFC 8446 §4.4.1)."""
    digest = hashes.Hash(_hash(hash_name))
    for message in messages:
        digest.update(message)
    return digest.finalize()


def hkdf_extract(hash_name: str, salt: bytes | None, ikm: bytes) -> bytes:
    """HKDF-Extract (RFC 5869); an empty/absent salt means HashLen zero bytes."""
    return hmac_digest(hash_name, salt or bytes(hash_len(hash_name)), ikm)


def hkdf_expand(hash_name: str, prk: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Expand (RFC 5869)."""
    size = hash_len(hash_name)
    if not 0 < length <= 255 * size:
        raise KeyScheduleError(f"HKDF-Expand length {length} out of range")
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac_digest(hash_name, prk, block + info + bytes([counter]))
        out += block
        counter += 1
    return out[:length]


def hkdf_label(label: bytes | str, context: bytes, length: int) -> bytes:
    """The ``HkdfLabel`` structure of RFC 8446 §7.1 (``"tls13 "`` prefix added here)."""
    raw = label.encode() if isinstance(label, str) else label
    full = LABEL_PREFIX + raw
    if len(full) > 255 or len(context) > 255 or not 0 <= length <= 0xFFFF:
        raise KeyScheduleError("HkdfLabel field out of range")
    return length.to_bytes(2, "big") + bytes([len(full)]) + full + bytes([len(context)]) + context


def hkdf_expand_label(
    hash_name: str, secret: bytes, label: bytes | str, context: bytes, length: int
) -> bytes:
    """HKDF-Expand-Label(Secret, Label, Context, Length) of RFC 8446 §7.1."""
    return hkdf_expand(hash_name, secret, hkdf_label(label, context, length), length)


def derive_secret(
    hash_name: str, secret: bytes, label: bytes | str, transcript_digest: bytes
) -> bytes:
    """Derive-Secret(Secret, Label, Messages), given Transcript-Hash(Messages) already computed."""
    return hkdf_expand_label(hash_name, secret, label, transcript_digest, hash_len(hash_name))


def early_secret(hash_name: str, psk: bytes | None = None) -> bytes:
    """Early Secret = HKDF-Extract(0, PSK or zeros)."""
    return hkdf_extract(hash_name, None, psk or bytes(hash_len(hash_name)))


def handshake_secret(hash_name: str, early: bytes, shared_secret: bytes) -> bytes:
    """Handshake Secret = HKDF-Extract(Derive-Secret(early, "derived", ""), (EC)DHE)."""
    derived = derive_secret(hash_name, early, "derived", transcript_hash(hash_name))
    return hkdf_extract(hash_name, derived, shared_secret)


def master_secret(hash_name: str, handshake: bytes) -> bytes:
    """Master Secret = HKDF-Extract(Derive-Secret(handshake, "derived", ""), 0)."""
    derived = derive_secret(hash_name, handshake, "derived", transcript_hash(hash_name))
    return hkdf_extract(hash_name, derived, bytes(hash_len(hash_name)))


def traffic_key_iv(cipher: CipherSpec | str, secret: bytes) -> tuple[bytes, bytes]:
    """(write key, 12-byte write IV) from a TLS 1.3 traffic secret (RFC 8446 §7.3)."""
    spec = lookup(cipher)
    _check_secret(spec, secret)
    key = hkdf_expand_label(spec.hash_name, secret, "key", b"", spec.key_size)
    iv = hkdf_expand_label(spec.hash_name, secret, "iv", b"", NONCE_SIZE)
    return key, iv


def next_traffic_secret(cipher: CipherSpec | str, secret: bytes) -> bytes:
    """application_traffic_secret_N+1 for KeyUpdate (RFC 8446 §7.2, label "traffic upd")."""
    spec = lookup(cipher)
    _check_secret(spec, secret)
    return hkdf_expand_label(spec.hash_name, secret, KEY_UPDATE_LABEL, b"", spec.hash_len)


def _check_secret(spec: CipherSpec, secret: bytes) -> None:
    if spec.tls13_suite is None:
        raise KeyScheduleError(f"{spec.name} has no TLS 1.3 cipher suite")
    if len(secret) != spec.hash_len:
        raise KeyScheduleError(
            f"{spec.name} traffic secret must be {spec.hash_len} bytes ({spec.hash_name}), "
            f"got {len(secret)}"
        )


def _seq_bytes(seq: int) -> bytes:
    if not 0 <= seq <= MAX_SEQ:
        raise KeyScheduleError(f"record sequence number {seq} out of 64-bit range")
    return seq.to_bytes(8, "big")


def split_nonce_iv(cipher: CipherSpec | str, iv12: bytes) -> tuple[bytes, bytes]:
    """(salt, iv) struct fields for a 12-byte nonce base.

    ``iv12[:4], iv12[4:]`` for AES/SM4/ARIA; ``b"", iv12`` for ChaCha20.
    """
    spec = lookup(cipher)
    if len(iv12) != NONCE_SIZE:
        raise KeyScheduleError(f"nonce IV must be {NONCE_SIZE} bytes, got {len(iv12)}")
    return iv12[: spec.salt_size], iv12[spec.salt_size :]


def tls13_crypto_info(
    cipher: CipherSpec | str, key: bytes, iv12: bytes, seq: int = 0
) -> uapi.CryptoInfo:
    """Kernel crypto_info for a TLS 1.3 direction with write key ``key`` and IV ``iv12``."""
    spec = lookup(cipher)
    if len(key) != spec.key_size:
        raise KeyScheduleError(f"{spec.name} key must be {spec.key_size} bytes, got {len(key)}")
    salt, iv = split_nonce_iv(spec, iv12)
    return uapi.CryptoInfo(
        version=uapi.TLS_1_3_VERSION,
        cipher_type=spec.cipher_type,
        key=key,
        iv=iv,
        salt=salt,
        rec_seq=_seq_bytes(seq),
    )


# --- TLS 1.2 --------------------------------------------------------------------------------


def tls12_prf(hash_name: str, secret: bytes, label: bytes | str, seed: bytes, length: int) -> bytes:
    """PRF(secret, label, seed) = P_hash(secret, label + seed) (RFC 5246 §5)."""
    raw = label.encode() if isinstance(label, str) else label
    full_seed = raw + seed
    out = b""
    a = full_seed
    while len(out) < length:
        a = hmac_digest(hash_name, secret, a)
        out += hmac_digest(hash_name, secret, a + full_seed)
    return out[:length]


@dataclass(frozen=True)
class Tls12KeyBlock:
    """The AEAD parts of a TLS 1.2 key block (no MAC keys for AEAD suites)."""

    client_write_key: bytes
    server_write_key: bytes
    client_write_iv: bytes
    server_write_iv: bytes


def tls12_key_block(
    cipher: CipherSpec | str, master: bytes, client_random: bytes, server_random: bytes
) -> Tls12KeyBlock:
    """Split PRF(master, "key expansion", server_random + client_random) for an AEAD suite.

    IV length is 4 for GCM/CCM (RFC 5288, RFC 6655) and 12 for ChaCha20 (RFC 7905).
    """
    spec = lookup(cipher)
    if len(master) != 48:
        raise KeyScheduleError(f"TLS 1.2 master secret must be 48 bytes, got {len(master)}")
    if len(client_random) != 32 or len(server_random) != 32:
        raise KeyScheduleError("TLS 1.2 client/server random must be 32 bytes each")
    klen, ivlen = spec.key_size, spec.tls12_fixed_iv_size
    block = tls12_prf(
        spec.hash_name, master, "key expansion", server_random + client_random, 2 * (klen + ivlen)
    )
    return Tls12KeyBlock(
        client_write_key=block[:klen],
        server_write_key=block[klen : 2 * klen],
        client_write_iv=block[2 * klen : 2 * klen + ivlen],
        server_write_iv=block[2 * klen + ivlen :],
    )


def tls12_crypto_info(
    cipher: CipherSpec | str,
    key: bytes,
    fixed_iv: bytes,
    seq: int = 0,
    explicit_nonce: bytes | None = None,
) -> uapi.CryptoInfo:
    """Kernel crypto_info for a TLS 1.2 direction.

    ``fixed_iv`` is the key block's write IV (4 bytes GCM/CCM, 12 bytes ChaCha20).
    ``explicit_nonce`` (GCM/CCM only) defaults to the 8-byte sequence number.
    """
    spec = lookup(cipher)
    if len(key) != spec.key_size:
        raise KeyScheduleError(f"{spec.name} key must be {spec.key_size} bytes, got {len(key)}")
    if len(fixed_iv) != spec.tls12_fixed_iv_size:
        raise KeyScheduleError(
            f"{spec.name} TLS 1.2 fixed IV must be {spec.tls12_fixed_iv_size} bytes, "
            f"got {len(fixed_iv)}"
        )
    if spec.salt_size == 0:
        if explicit_nonce is not None:
            raise KeyScheduleError(f"{spec.name} has no explicit nonce in TLS 1.2")
        salt, iv = b"", fixed_iv
    else:
        iv = _seq_bytes(seq) if explicit_nonce is None else explicit_nonce
        if len(iv) != spec.tls12_explicit_nonce_size:
            raise KeyScheduleError(f"{spec.name} explicit nonce must be 8 bytes, got {len(iv)}")
        salt = fixed_iv
    return uapi.CryptoInfo(
        version=uapi.TLS_1_2_VERSION,
        cipher_type=spec.cipher_type,
        key=key,
        iv=iv,
        salt=salt,
        rec_seq=_seq_bytes(seq),
    )


# --- one direction of a connection ----------------------------------------------------------


@dataclass(frozen=True)
class DirectionState:
    """Keys of one direction (TX or RX) of a TLS connection, at record number ``seq``.

    ``iv`` is the 12-byte nonce base for TLS 1.3 and for ChaCha20 in TLS 1.2, and the 4-byte
    implicit salt for TLS 1.2 GCM/CCM.  ``secret`` is the TLS 1.3 traffic secret (None for
    TLS 1.2, which has no rekey); ``generation`` counts KeyUpdates since the handshake.
    """

    cipher: CipherSpec
    version: int
    key: bytes
    iv: bytes
    seq: int = 0
    secret: bytes | None = None
    generation: int = 0

    def __post_init__(self) -> None:
        spec = self.cipher
        if self.version not in (uapi.TLS_1_2_VERSION, uapi.TLS_1_3_VERSION):
            raise KeyScheduleError(f"unsupported TLS version {self.version:#06x}")
        if len(self.key) != spec.key_size:
            raise KeyScheduleError(
                f"{spec.name} key must be {spec.key_size} bytes, got {len(self.key)}"
            )
        want_iv = NONCE_SIZE if self.uses_xor_nonce else spec.tls12_fixed_iv_size
        if len(self.iv) != want_iv:
            raise KeyScheduleError(f"{spec.name} IV must be {want_iv} bytes, got {len(self.iv)}")
        _seq_bytes(self.seq)
        if self.version == uapi.TLS_1_2_VERSION and self.secret is not None:
            raise KeyScheduleError("TLS 1.2 has no traffic secret")
        if self.secret is not None:
            _check_secret(spec, self.secret)

    @classmethod
    def from_tls13_secret(
        cls, cipher: CipherSpec | str, secret: bytes, seq: int = 0, generation: int = 0
    ) -> DirectionState:
        """State derived from a TLS 1.3 traffic secret."""
        spec = lookup(cipher)
        key, iv = traffic_key_iv(spec, secret)
        return cls(spec, uapi.TLS_1_3_VERSION, key, iv, seq, secret, generation)

    @classmethod
    def from_tls12(
        cls, cipher: CipherSpec | str, key: bytes, fixed_iv: bytes, seq: int = 0
    ) -> DirectionState:
        """State from TLS 1.2 key block material (write key and write IV)."""
        return cls(lookup(cipher), uapi.TLS_1_2_VERSION, key, fixed_iv, seq)

    @property
    def uses_xor_nonce(self) -> bool:
        """Nonce = iv12 XOR seq (TLS 1.3, ChaCha20) rather than salt || explicit nonce."""
        return self.version == uapi.TLS_1_3_VERSION or self.cipher.salt_size == 0

    @property
    def can_rekey(self) -> bool:
        """Whether :meth:`next` is possible (TLS 1.3 with a known traffic secret)."""
        return self.version == uapi.TLS_1_3_VERSION and self.secret is not None

    def next(self) -> DirectionState:
        """The state after a KeyUpdate: next traffic secret, new key/IV, sequence reset to 0."""
        if self.version != uapi.TLS_1_3_VERSION:
            raise KeyScheduleError("TLS 1.2 has no KeyUpdate; rekey needs TLS 1.3")
        if self.secret is None:
            raise KeyScheduleError("no traffic secret known: cannot derive the next key")
        nxt = next_traffic_secret(self.cipher, self.secret)
        return DirectionState.from_tls13_secret(self.cipher, nxt, 0, self.generation + 1)

    def with_seq(self, seq: int) -> DirectionState:
        """The same keys at record number ``seq``."""
        return replace(self, seq=seq)

    def crypto_info(self) -> uapi.CryptoInfo:
        """The kernel crypto_info for installing this state with TLS_TX/TLS_RX."""
        if self.version == uapi.TLS_1_3_VERSION:
            return tls13_crypto_info(self.cipher, self.key, self.iv, self.seq)
        return tls12_crypto_info(self.cipher, self.key, self.iv, self.seq)


TrafficKeys = DirectionState
"""Alias: the brief's name for the same type."""
