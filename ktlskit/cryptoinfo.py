"""Building and checking ``crypto_info`` before any syscall (pure functions).

Mirrors the kernel's own checks in ``do_tls_setsockopt_conf`` so bad input and impossible state
changes fail with a message naming the cause, before the kernel is asked.
"""

from __future__ import annotations

from enum import StrEnum

from ktlskit import uapi
from ktlskit.ciphers import CipherError, CipherSpec, by_cipher_type, lookup
from ktlskit.keyschedule import DirectionState, KeyScheduleError
from ktlskit.ktlserrors import KtlsInputError, KtlsOp, KtlsRekeyError, KtlsStateError


class Direction(StrEnum):
    """Which half of the connection: transmit or receive."""

    TX = "tx"
    RX = "rx"

    @property
    def optname(self) -> int:
        """The SOL_TLS option for this direction."""
        return uapi.TLS_TX if self is Direction.TX else uapi.TLS_RX



def _cipher_of(cipher: CipherSpec | str | int) -> CipherSpec:
    try:
        return by_cipher_type(cipher) if isinstance(cipher, int) else lookup(cipher)
    except CipherError as exc:
        raise KtlsInputError(str(exc)) from None


def build_crypto_info(
    version: int,
    cipher: CipherSpec | str | int,
    key: bytes,
    iv: bytes,
    salt: bytes,
    rec_seq: bytes | int,
) -> uapi.CryptoInfo:
    """Validate raw parameters and return the crypto_info; raises :class:`KtlsInputError`."""
    spec = _cipher_of(cipher)
    if version not in (uapi.TLS_1_2_VERSION, uapi.TLS_1_3_VERSION):
        raise KtlsInputError(f"version must be TLS 1.2 (0x0303) or 1.3 (0x0304), got {version:#x}")
    if version == uapi.TLS_1_3_VERSION and not spec.kernel_tls13:
        raise KtlsInputError(f"{spec.name} is accepted by the kernel with TLS 1.2 only")
    if isinstance(rec_seq, int):
        if not 0 <= rec_seq < 1 << 64:
            raise KtlsInputError(f"rec_seq {rec_seq} does not fit 64 bits")
        rec_seq = rec_seq.to_bytes(8, "big")
    sizes = {"key": spec.key_size, "iv": spec.iv_size, "salt": spec.salt_size}
    sizes["rec_seq"] = spec.rec_seq_size
    values = {"key": key, "iv": iv, "salt": salt, "rec_seq": rec_seq}
    for field, want in sizes.items():
        got = len(values[field])
        if got != want:
            raise KtlsInputError(f"{spec.name}: {field} must be {want} bytes, got {got}")
    return uapi.CryptoInfo(version, spec.cipher_type, key, iv, salt, rec_seq)


def check_install(
    direction: Direction,
    new: uapi.CryptoInfo,
    current: uapi.CryptoInfo | None,
    other: uapi.CryptoInfo | None,
) -> bool:
    """Check an install against the socket's state; returns True if it is a rekey.

    Mirrors the kernel: rekey is TLS 1.3 only and keeps version and cipher; a first install must
    match the other direction's version and cipher.  Raises :class:`KtlsRekeyError` or
    :class:`KtlsStateError`.
    """
    name = by_cipher_type(new.cipher_type).name
    if current is None:
        if other is not None and (
            other.version != new.version or other.cipher_type != new.cipher_type
        ):
            raise KtlsStateError(
                f"{direction.value.upper()} must use the same version and cipher as the other "
                f"direction ({other.version:#06x}/{by_cipher_type(other.cipher_type).name}), "
                f"got {new.version:#06x}/{name}"
            )
        return False
    if current.version == uapi.TLS_1_2_VERSION:
        raise KtlsRekeyError("TLS 1.2 does not support rekey", op=KtlsOp.REKEY)
    if current.version != new.version:
        raise KtlsRekeyError(
            f"rekey cannot change the version ({current.version:#06x} -> {new.version:#06x})",
            op=KtlsOp.REKEY,
        )
    if current.cipher_type != new.cipher_type:
        raise KtlsRekeyError(
            f"rekey cannot change the cipher ({by_cipher_type(current.cipher_type).name} -> "
            f"{name})",
            op=KtlsOp.REKEY,
        )
    return True


def check_rekey_state(direction: Direction, state: DirectionState | None) -> DirectionState:
    """The next state for a KeyUpdate in ``direction``, or a :class:`KtlsRekeyError`/state error."""
    if state is None:
        raise KtlsStateError(
            f"rekey before initial install: no {direction.value.upper()} keys known "
            "(install a DirectionState first)"
        )
    if state.version != uapi.TLS_1_3_VERSION:
        raise KtlsRekeyError("TLS 1.2 does not support rekey", op=KtlsOp.REKEY)
    try:
        return state.next()
    except KeyScheduleError as exc:
        raise KtlsRekeyError(
            f"cannot derive the next {direction.value.upper()} key: {exc}"
        ) from None
