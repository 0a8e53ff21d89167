"""The one table of kTLS ciphers: kernel numbers, sizes, TLS 1.3 suites, userspace AEADs.

Userspace AEAD availability (checked against ``cryptography`` 48 on OpenSSL 3.0):

* AES-GCM, AES-CCM and ChaCha20-Poly1305 are first-class AEAD classes.
* SM4 is only a block cipher there (``algorithms.SM4``), but it runs in GCM mode through
  ``Cipher``; SM4-CCM is built here (:class:`CcmOverBlockCipher`) from SM4-CBC (the CBC-MAC)
  and SM4-CTR following RFC 3610 with a 16-byte tag and a 12-byte nonce (L = 3).  Both are
  checked against the RFC 8998 appendix A vectors in the tests, and the CCM construction
  against ``AESCCM`` when run over AES.
* ARIA is not exposed by ``cryptography`` at all, so the two ARIA entries have no userspace
  AEAD; :meth:`CipherSpec.aead` raises :class:`CipherUnavailableError` for them.

Kernel rule worth knowing (``validate_crypto_info`` in ``net/tls/tls_main.c``): ARIA is
accepted with TLS 1.2 only; SM4 is accepted with both versions.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

from ktlskit import uapi
from ktlskit.errors import KtlskitError

NONCE_SIZE: Final = 12
"""Per-record AEAD nonce size for every kTLS cipher (salt + iv, or the full ChaCha IV)."""


class CipherError(KtlskitError):
    """Base for cipher table errors."""


class UnknownCipherError(CipherError, KeyError):
    """A cipher name, kernel cipher_type or TLS suite is not in the table."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class CipherUnavailableError(CipherError):
    """The cipher is a valid kTLS cipher but userspace crypto cannot run it."""


class Aead(Protocol):
    """The subset of the ``cryptography`` AEAD interface the record layer uses.

    ``decrypt`` raises ``cryptography.exceptions.InvalidTag`` on authentication failure.
    """

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...


_TAG_SIZE: Final = 16


class Sm4Gcm:
    """SM4-GCM with a 16-byte tag appended to the ciphertext, like ``AESGCM``."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 16:
            raise ValueError("SM4 key must be 16 bytes")
        self._key = bytes(key)

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        enc = Cipher(algorithms.SM4(self._key), modes.GCM(nonce)).encryptor()
        if associated_data:
            enc.authenticate_additional_data(associated_data)
        out = enc.update(data) + enc.finalize()
        return out + enc.tag

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        if len(data) < _TAG_SIZE:
            raise InvalidTag()
        body, tag = data[:-_TAG_SIZE], data[-_TAG_SIZE:]
        dec = Cipher(algorithms.SM4(self._key), modes.GCM(nonce, tag)).decryptor()
        if associated_data:
            dec.authenticate_additional_data(associated_data)
        return dec.update(body) + dec.finalize()


class CcmOverBlockCipher:
    """CCM (RFC 3610) with a 16-byte tag and a 12-byte nonce (L = 3) over any 128-bit block
    cipher from ``cryptography``.

    ``cryptography`` has no generic CCM mode, so the CBC-MAC is the last block of a CBC
    encryption (zero IV) of the formatted input and the keystream comes from CTR mode.
    """

    _L: Final = 3  # 15 - nonce length
    _BLOCK: Final = 16

    def __init__(self, algorithm: type[algorithms.AES] | type[algorithms.SM4], key: bytes) -> None:
        self._algorithm = algorithm
        self._key = bytes(key)
        algorithm(self._key)  # validates the key size

    def _counter_block(self, nonce: bytes, index: int) -> bytes:
        return bytes([self._L - 1]) + nonce + index.to_bytes(self._L, "big")

    def _mac(self, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        flags = (0x40 if aad else 0) | (((_TAG_SIZE - 2) // 2) << 3) | (self._L - 1)
        blocks = bytes([flags]) + nonce + len(data).to_bytes(self._L, "big")
        if aad:
            if len(aad) < 0xFF00:
                encoded = len(aad).to_bytes(2, "big") + aad
            else:
                encoded = b"\xff\xfe" + len(aad).to_bytes(4, "big") + aad
            blocks += encoded + bytes(-len(encoded) % self._BLOCK)
        blocks += data + bytes(-len(data) % self._BLOCK)
        enc = Cipher(self._algorithm(self._key), modes.CBC(bytes(self._BLOCK))).encryptor()
        return (enc.update(blocks) + enc.finalize())[-self._BLOCK :]

    def _ctr(self, nonce: bytes, index: int, data: bytes) -> bytes:
        counter = modes.CTR(self._counter_block(nonce, index))
        enc = Cipher(self._algorithm(self._key), counter).encryptor()
        return enc.update(data) + enc.finalize()

    def _check(self, nonce: bytes, data: bytes) -> None:
        if len(nonce) != 15 - self._L:
            raise ValueError(f"CCM nonce must be {15 - self._L} bytes")
        if len(data) >= 1 << (8 * self._L):
            raise ValueError("CCM message too long for a 12-byte nonce")

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        self._check(nonce, data)
        aad = associated_data or b""
        tag = self._ctr(nonce, 0, self._mac(nonce, data, aad))[:_TAG_SIZE]
        return self._ctr(nonce, 1, data) + tag

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        self._check(nonce, data)
        if len(data) < _TAG_SIZE:
            raise InvalidTag()
        aad = associated_data or b""
        body, tag = data[:-_TAG_SIZE], data[-_TAG_SIZE:]
        plain = self._ctr(nonce, 1, body)
        want = self._ctr(nonce, 0, self._mac(nonce, plain, aad))[:_TAG_SIZE]
        if not hmac.compare_digest(want, tag):
            raise InvalidTag()
        return plain


class Sm4Ccm(CcmOverBlockCipher):
    """SM4-CCM as used by RFC 8998 (16-byte tag, 12-byte nonce)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 16:
            raise ValueError("SM4 key must be 16 bytes")
        super().__init__(algorithms.SM4, key)


_HASHES: Final[dict[str, Callable[[], hashes.HashAlgorithm]]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sm3": hashes.SM3,
}


@dataclass(frozen=True)
class CipherSpec:
    """One kTLS cipher.

    ``iv_size``/``salt_size`` are the kernel crypto_info field sizes.  ``hash_name`` is the
    HKDF hash of the cipher's TLS 1.3 suite; where no TLS 1.3 suite exists (ARIA) it is the PRF
    hash of the TLS 1.2 AEAD suites with that cipher.  SM4 suites (RFC 8998) use SM3.
    """

    name: str
    cipher_type: int
    key_size: int
    iv_size: int
    salt_size: int
    rec_seq_size: int
    tag_size: int
    hash_name: str
    tls13_suite: int | None
    tls13_suite_name: str | None
    kernel_tls13: bool
    """Whether the 7.3 kernel accepts this cipher with TLS 1.3 (ARIA: no)."""
    aead_factory: Callable[[bytes], Aead] | None

    @property
    def userspace_available(self) -> bool:
        """True when this process can encrypt/decrypt records with the cipher."""
        return self.aead_factory is not None

    @property
    def tls12_explicit_nonce_size(self) -> int:
        """Bytes of explicit nonce in a TLS 1.2 record: 8 for GCM/CCM, 0 for ChaCha20."""
        return 0 if self.salt_size == 0 else self.iv_size

    @property
    def tls12_fixed_iv_size(self) -> int:
        """Bytes of implicit IV from the TLS 1.2 key block: 4 (GCM/CCM) or 12 (ChaCha20)."""
        return self.salt_size if self.salt_size else self.iv_size

    @property
    def hash_len(self) -> int:
        """Output size of :attr:`hash_name` (32 or 48)."""
        return self.hash_algorithm().digest_size

    def hash_algorithm(self) -> hashes.HashAlgorithm:
        """A fresh ``cryptography`` hash object for :attr:`hash_name`."""
        return _HASHES[self.hash_name]()

    def aead(self, key: bytes) -> Aead:
        """The userspace AEAD for ``key``; raises :class:`CipherUnavailableError` if none."""
        if self.aead_factory is None:
            raise CipherUnavailableError(
                f"{self.name} is not available in userspace crypto "
                "(the 'cryptography' package does not implement it)"
            )
        if len(key) != self.key_size:
            raise CipherError(f"{self.name} key must be {self.key_size} bytes, got {len(key)}")
        return self.aead_factory(key)


def _aes_ccm(key: bytes) -> Aead:
    return AESCCM(key, tag_length=_TAG_SIZE)


def _spec(
    name: str,
    cipher_type: int,
    hash_name: str,
    suite: tuple[int, str] | None,
    factory: Callable[[bytes], Aead] | None,
    *,
    kernel_tls13: bool = True,
) -> CipherSpec:
    sizes = uapi.CIPHER_FIELD_SIZES[cipher_type]
    return CipherSpec(
        name=name,
        cipher_type=cipher_type,
        key_size=sizes.key,
        iv_size=sizes.iv,
        salt_size=sizes.salt,
        rec_seq_size=sizes.rec_seq,
        tag_size=uapi.TAG_SIZE,
        hash_name=hash_name,
        tls13_suite=suite[0] if suite else None,
        tls13_suite_name=suite[1] if suite else None,
        kernel_tls13=kernel_tls13,
        aead_factory=factory,
    )


AES_GCM_128: Final = _spec(
    "aes-gcm-128", uapi.TLS_CIPHER_AES_GCM_128, "sha256", (0x1301, "TLS_AES_128_GCM_SHA256"), AESGCM
)
AES_GCM_256: Final = _spec(
    "aes-gcm-256", uapi.TLS_CIPHER_AES_GCM_256, "sha384", (0x1302, "TLS_AES_256_GCM_SHA384"), AESGCM
)
AES_CCM_128: Final = _spec(
    "aes-ccm-128",
    uapi.TLS_CIPHER_AES_CCM_128,
    "sha256",
    (0x1304, "TLS_AES_128_CCM_SHA256"),
    _aes_ccm,
)
CHACHA20_POLY1305: Final = _spec(
    "chacha20-poly1305",
    uapi.TLS_CIPHER_CHACHA20_POLY1305,
    "sha256",
    (0x1303, "TLS_CHACHA20_POLY1305_SHA256"),
    ChaCha20Poly1305,
)
SM4_GCM: Final = _spec(
    "sm4-gcm", uapi.TLS_CIPHER_SM4_GCM, "sm3", (0x00C6, "TLS_SM4_GCM_SM3"), Sm4Gcm
)
SM4_CCM: Final = _spec(
    "sm4-ccm", uapi.TLS_CIPHER_SM4_CCM, "sm3", (0x00C7, "TLS_SM4_CCM_SM3"), Sm4Ccm
)
ARIA_GCM_128: Final = _spec(
    "aria-gcm-128", uapi.TLS_CIPHER_ARIA_GCM_128, "sha256", None, None, kernel_tls13=False
)
ARIA_GCM_256: Final = _spec(
    "aria-gcm-256", uapi.TLS_CIPHER_ARIA_GCM_256, "sha384", None, None, kernel_tls13=False
)

ALL: Final[tuple[CipherSpec, ...]] = (
    AES_GCM_128,
    AES_GCM_256,
    AES_CCM_128,
    CHACHA20_POLY1305,
    SM4_GCM,
    SM4_CCM,
    ARIA_GCM_128,
    ARIA_GCM_256,
)

_BY_NAME: Final = {c.name: c for c in ALL}
_BY_TYPE: Final = {c.cipher_type: c for c in ALL}
_BY_SUITE: Final = {c.tls13_suite: c for c in ALL if c.tls13_suite is not None}
_BY_SUITE_NAME: Final = {c.tls13_suite_name: c for c in ALL if c.tls13_suite_name is not None}


def names() -> tuple[str, ...]:
    """All cipher names, in kernel cipher_type order."""
    return tuple(c.name for c in ALL)


def lookup(name: str | CipherSpec) -> CipherSpec:
    """The cipher called ``name`` (e.g. ``"aes-gcm-128"``); a CipherSpec passes through."""
    if isinstance(name, CipherSpec):
        return name
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownCipherError(
            f"unknown cipher {name!r}; valid names: {', '.join(names())}"
        ) from None


def by_cipher_type(cipher_type: int) -> CipherSpec:
    """The cipher with kernel number ``cipher_type`` (51..58)."""
    try:
        return _BY_TYPE[cipher_type]
    except KeyError:
        valid = ", ".join(f"{c.cipher_type} ({c.name})" for c in ALL)
        raise UnknownCipherError(
            f"unknown kTLS cipher_type {cipher_type}; valid: {valid}"
        ) from None


def by_tls13_suite(suite: int | str) -> CipherSpec:
    """The cipher of a TLS 1.3 suite, by IANA number (0x1301) or name (TLS_AES_128_GCM_SHA256)."""
    found = _BY_SUITE.get(suite) if isinstance(suite, int) else _BY_SUITE_NAME.get(suite)
    if found is None:
        valid = ", ".join(
            f"{c.tls13_suite_name} ({c.tls13_suite:#06x})" for c in _BY_SUITE.values()
        )
        shown = f"{suite:#06x}" if isinstance(suite, int) else repr(suite)
        raise UnknownCipherError(f"no kTLS cipher for TLS 1.3 suite {shown}; valid: {valid}")
    return found


def available() -> tuple[CipherSpec, ...]:
    """Ciphers this process can run in userspace (everything except ARIA)."""
    return tuple(c for c in ALL if c.userspace_available)
