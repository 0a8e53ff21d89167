"""``KtlsSocket``: a connected TCP socket driven through the kernel TLS ULP.

Every syscall goes through :func:`map_os_error`, so callers only ever see :class:`KtlsError`
subclasses whose message names the cause.  Input is validated before any syscall.  State
checks (rekey on TLS 1.2, cipher/version change on rekey, send before TX keys, ...) are also
made before the syscall unless the socket is built with ``strict=False``, which lets kernel
tests send the request anyway and observe the kernel's own answer.

Kernel facts this relies on (Linux 7.3 ``net/tls``):

* ``setsockopt(SOL_TLS, TLS_TX|TLS_RX)`` a second time is a rekey, TLS 1.3 only: TLS 1.2 gets
  ``EBUSY``; a changed version or cipher gets ``EINVAL`` (``do_tls_setsockopt_conf``).
* The kernel never sends KeyUpdate.  User space sends the handshake record itself, then
  installs the next TX key.  On RX the kernel flags a pending rekey when a handshake record
  *starts* with a KeyUpdate message (``tls_check_pending_rekey``); reads then fail with
  ``EKEYEXPIRED`` until the next RX key is installed.
* poll() hides POLLIN from the moment the kernel *decrypts* a KeyUpdate, even while that
  record still waits on ``rx_list`` because the recvmsg that decrypted it had already copied
  application data (``tls_sk_poll`` checks ``key_update_pending`` before ``rx_list``).  A
  reader that polls before each read, as CPython does for a socket with a timeout, then
  waits forever for a record that is already there.  So this wrapper keeps the socket
  non-blocking and always tries the syscall first, polling only after ``EAGAIN``
  (see :meth:`KtlsSocket._io`).
* A non-data record read without room for the ``TLS_GET_RECORD_TYPE`` cmsg fails with ``EIO``.
* ``TLS_TX_MAX_PAYLOAD_LEN`` takes exactly a ``u16`` in 64..16384 (63 with TLS 1.3).
"""

from __future__ import annotations

import errno
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Final, TypeVar

from ktlskit import uapi
from ktlskit.ciphers import CipherError, CipherSpec, by_cipher_type, lookup
from ktlskit.errors import KtlskitError
from ktlskit.keyschedule import DirectionState, KeyScheduleError
from ktlskit.records import (
    HANDSHAKE_KEY_UPDATE,
    MAX_PLAINTEXT,
    ContentType,
    RecordFormatError,
    decode_key_update_body,
    encode_key_update,
    is_key_update,
    split_handshake,
)

_T = TypeVar("_T")

EOF_CONTENT_TYPE: Final = 0
"""``recv_record`` returns ``(EOF_CONTENT_TYPE, b"")`` on orderly shutdown (0 is no TLS type)."""

DEFAULT_RECV_SIZE: Final = MAX_PLAINTEXT


class Direction(StrEnum):
    """Which half of the connection: transmit or receive."""

    TX = "tx"
    RX = "rx"

    @property
    def optname(self) -> int:
        """The SOL_TLS option for this direction."""
        return uapi.TLS_TX if self is Direction.TX else uapi.TLS_RX


class KtlsOp(StrEnum):
    """What was being attempted when the kernel answered with an errno."""

    ATTACH_ULP = "attach TLS ULP"
    SET_CRYPTO = "install crypto"
    REKEY = "rekey"
    GET_CRYPTO = "read crypto"
    SET_OPTION = "set TLS option"
    GET_OPTION = "get TLS option"
    SEND = "send"
    RECV = "receive"


# --- exceptions -----------------------------------------------------------------------------


class KtlsError(KtlskitError):
    """Base of every kTLS socket error; ``errno`` is set when the kernel produced it."""

    def __init__(self, message: str, *, errno_: int | None = None, op: KtlsOp | None = None):
        super().__init__(message)
        self.errno = errno_
        self.op = op


class KtlsInputError(KtlsError, ValueError):
    """Bad arguments, refused before any syscall."""


class KtlsStateError(KtlsError):
    """The request does not fit the socket's state (refused before the syscall)."""


class KtlsUnavailableError(KtlsError):
    """The kernel has no TLS ULP (CONFIG_TLS missing or the module cannot load)."""


class KtlsUlpError(KtlsError):
    """Attaching the ULP failed for a reason other than missing kernel support."""


class KtlsNotAttachedError(KtlsError):
    """A SOL_TLS option was used on a socket without the TLS ULP."""


class KtlsConfigError(KtlsError):
    """The kernel rejected a crypto_info or option value (EINVAL)."""


class KtlsNotInstalledError(KtlsError):
    """No crypto is installed in the direction asked about (EBUSY on readback)."""


class KtlsRekeyError(KtlsError):
    """A rekey is impossible: TLS 1.2, offloaded socket, changed cipher/version, no secret."""


class KtlsBusyError(KtlsError):
    """The kernel is busy with state that blocks the request (e.g. an open TX record)."""


class KtlsKeyExpiredError(KtlsError):
    """EKEYEXPIRED: a KeyUpdate was received and the next RX key is not installed yet."""


class KtlsDecryptError(KtlsError):
    """EBADMSG: a record failed to decrypt/authenticate; the kernel aborted the connection."""


class KtlsMessageSizeError(KtlsError):
    """EMSGSIZE: a record or message is too long."""


class KtlsNotSupportedError(KtlsError):
    """EOPNOTSUPP/ENOENT-style: the kernel lacks the feature or crypto algorithm."""


class KtlsRecordTypeError(KtlsError):
    """EIO on receive: a non-data record arrived but there was no room for its type cmsg."""


class KtlsConnectionError(KtlsError):
    """The TCP connection is gone (EPIPE, ECONNRESET, ENOTCONN)."""


class KtlsTimeoutError(KtlsError):
    """The socket timeout expired or a non-blocking call would block."""


class KtlsOSError(KtlsError):
    """Any other errno, named in the message."""


# --- errno mapping --------------------------------------------------------------------------

_Mapping = tuple[type[KtlsError], str]

_BY_OP: Final[dict[KtlsOp, dict[int, _Mapping]]] = {
    KtlsOp.ATTACH_ULP: {
        errno.ENOENT: (KtlsUnavailableError, "kernel has no TLS ULP (CONFIG_TLS)"),
        errno.ENOPROTOOPT: (KtlsUnavailableError, "kernel has no TLS ULP (CONFIG_TLS)"),
        errno.EEXIST: (KtlsUlpError, "a ULP is already attached to this socket"),
        errno.ENOTCONN: (KtlsUlpError, "the TLS ULP needs an ESTABLISHED TCP socket"),
        errno.EINVAL: (KtlsUlpError, "the socket cannot take a ULP (e.g. decrypt-user state)"),
        errno.EOPNOTSUPP: (KtlsUlpError, "this socket type does not support ULPs"),
    },
    KtlsOp.SET_CRYPTO: {
        errno.EINVAL: (
            KtlsConfigError,
            "kernel rejected crypto_info: unsupported version/cipher, ARIA with TLS 1.3, "
            "wrong struct size, or TX/RX version or cipher mismatch",
        ),
        errno.EBUSY: (KtlsRekeyError, "crypto already installed: TLS 1.2 does not support rekey"),
        errno.ENOPROTOOPT: (KtlsNotAttachedError, "TLS ULP not attached (call attach_ulp first)"),
        errno.ENOENT: (
            KtlsNotSupportedError,
            "kernel crypto API lacks the cipher's algorithm (CONFIG_CRYPTO_*)",
        ),
    },
    KtlsOp.REKEY: {
        errno.EBUSY: (
            KtlsRekeyError,
            "TLS 1.2 does not support rekey (or the socket is offloaded)",
        ),
        errno.EINVAL: (
            KtlsRekeyError,
            "rekey rejected: cipher or version changed from the installed crypto",
        ),
        errno.ENOPROTOOPT: (KtlsNotAttachedError, "TLS ULP not attached (call attach_ulp first)"),
    },
    KtlsOp.GET_CRYPTO: {
        errno.EBUSY: (KtlsNotInstalledError, "no crypto installed for this direction"),
        errno.EINVAL: (KtlsConfigError, "readback length does not match the cipher's struct"),
        errno.ENOPROTOOPT: (KtlsNotAttachedError, "TLS ULP not attached (call attach_ulp first)"),
        # plain TCP: ip_getsockopt() answers EOPNOTSUPP for a level it does not know
        errno.EOPNOTSUPP: (KtlsNotAttachedError, "TLS ULP not attached (call attach_ulp first)"),
    },
    KtlsOp.SET_OPTION: {
        errno.EINVAL: (
            KtlsConfigError,
            "kernel rejected the option value (or it needs TLS 1.3 / installed RX crypto)",
        ),
        errno.EBUSY: (KtlsBusyError, "an open TX record is pending"),
        errno.ENOPROTOOPT: (
            KtlsNotAttachedError,
            "TLS ULP not attached, or the kernel does not know this option",
        ),
    },
    KtlsOp.GET_OPTION: {
        errno.EINVAL: (
            KtlsConfigError,
            "kernel refused the readback (wrong length, or it needs TLS 1.3 / installed RX)",
        ),
        errno.ENOPROTOOPT: (
            KtlsNotAttachedError,
            "TLS ULP not attached, or the kernel does not know this option",
        ),
        errno.EOPNOTSUPP: (KtlsNotAttachedError, "TLS ULP not attached (call attach_ulp first)"),
    },
    KtlsOp.SEND: {
        errno.EINVAL: (
            KtlsConfigError,
            "kernel rejected the message (bad TLS cmsg, or MSG_MORE with a record type)",
        ),
        errno.EBADMSG: (
            KtlsDecryptError,
            "connection aborted by an earlier TLS error (EBADMSG)",
        ),
    },
    KtlsOp.RECV: {
        errno.EIO: (
            KtlsRecordTypeError,
            "non-data record received without room for the TLS_GET_RECORD_TYPE cmsg",
        ),
        errno.EINVAL: (KtlsDecryptError, "malformed record header (wrong record version)"),
    },
}

_ANY_OP: Final[dict[int, _Mapping]] = {
    errno.EKEYEXPIRED: (KtlsKeyExpiredError, "RX key update pending: install the next RX key"),
    errno.EBADMSG: (KtlsDecryptError, "record failed to decrypt or authenticate"),
    errno.EMSGSIZE: (KtlsMessageSizeError, "record too long"),
    errno.EOPNOTSUPP: (KtlsNotSupportedError, "operation not supported by kernel TLS"),
    errno.EPIPE: (KtlsConnectionError, "connection closed (EPIPE)"),
    errno.ECONNRESET: (KtlsConnectionError, "connection reset by peer"),
    errno.ENOTCONN: (KtlsConnectionError, "socket is not connected"),
    errno.EAGAIN: (KtlsTimeoutError, "operation would block"),
    errno.ETIMEDOUT: (KtlsTimeoutError, "connection timed out"),
    errno.ENOMEM: (KtlsOSError, "kernel out of memory"),
    errno.EFAULT: (KtlsOSError, "bad address passed to the kernel"),
}


def map_errno(err: int, op: KtlsOp, detail: str = "") -> KtlsError:
    """The typed exception for ``err`` returned by the kernel while doing ``op``."""
    cls, cause = (
        _BY_OP.get(op, {}).get(err)
        or _ANY_OP.get(err)
        or (
            KtlsOSError,
            "unexpected error",
        )
    )
    name = errno.errorcode.get(err, str(err))
    suffix = f" [{detail}]" if detail else ""
    return cls(f"{op.value}: {cause} ({name}){suffix}", errno_=err, op=op)


def map_os_error(exc: OSError, op: KtlsOp, detail: str = "") -> KtlsError:
    """Typed exception for an OSError raised by a socket call (timeouts have no errno)."""
    if isinstance(exc, TimeoutError) and exc.errno is None:
        return KtlsTimeoutError(f"{op.value}: socket timeout expired", op=op)
    if exc.errno is None:
        return KtlsOSError(f"{op.value}: {exc}", op=op)
    return map_errno(exc.errno, op, detail)


# --- validation (pure) ----------------------------------------------------------------------


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


# --- the socket -----------------------------------------------------------------------------


@dataclass
class RekeyCounters:
    """How many rekeys this wrapper performed, and KeyUpdate messages sent/received."""

    tx_rekeys: int = 0
    rx_rekeys: int = 0
    key_updates_sent: int = 0
    key_updates_received: int = 0


class KtlsSocket:
    """A connected TCP socket with kernel TLS.

    One thread may send while another receives (the kernel serialises them on the socket
    lock); two threads must not both send, or both receive.

    The wrapper owns the socket's blocking mode: it sets the file descriptor non-blocking
    and applies the timeout the socket had (``timeout`` property; None waits forever) with
    its own try-then-poll loop, because CPython's poll-before-read hangs on a queued
    KeyUpdate (module docstring).  Do not change the wrapped socket's timeout afterwards.

    ``auto_key_update``: ``recv_record`` handles a received KeyUpdate itself (installs the next
    RX key and answers ``update_requested`` with our own KeyUpdate).
    ``strict``: refuse state errors before the syscall (see module docstring).
    """

    def __init__(
        self, sock: socket.socket, *, auto_key_update: bool = True, strict: bool = True
    ) -> None:
        if sock.type != socket.SOCK_STREAM or sock.family not in (
            socket.AF_INET,
            socket.AF_INET6,
        ):
            raise KtlsInputError("KtlsSocket needs a TCP (SOCK_STREAM, AF_INET/AF_INET6) socket")
        self._sock = sock
        self.timeout: float | None = sock.gettimeout()
        sock.setblocking(False)
        self.auto_key_update = auto_key_update
        self.strict = strict
        self.counters = RekeyCounters()
        self._ulp_attached = False
        self._rx_key_update_pending = False
        self._rx_data = bytearray()  # application data read but not yet returned by recv()
        self.update_answer_due = False  # peer requested an update we have not answered yet
        self._installed: dict[Direction, uapi.CryptoInfo] = {}
        self._states: dict[Direction, DirectionState] = {}

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def sock(self) -> socket.socket:
        """The wrapped socket."""
        return self._sock

    @property
    def ulp_attached(self) -> bool:
        """Whether :meth:`attach_ulp` succeeded on this wrapper."""
        return self._ulp_attached

    def fileno(self) -> int:
        """The socket's file descriptor."""
        return self._sock.fileno()

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()

    def __enter__(self) -> KtlsSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def installed(self, direction: Direction | str) -> uapi.CryptoInfo | None:
        """The crypto_info this wrapper installed last in ``direction`` (None if none)."""
        return self._installed.get(_direction(direction))

    def state(self, direction: Direction | str) -> DirectionState | None:
        """The key state installed last in ``direction`` via :meth:`install` (None if raw)."""
        return self._states.get(_direction(direction))

    def _setsockopt(self, level: int, optname: int, value: bytes, op: KtlsOp) -> None:
        try:
            self._sock.setsockopt(level, optname, value)
        except OSError as exc:
            raise map_os_error(exc, op) from exc

    def _getsockopt(self, optname: int, size: int, op: KtlsOp) -> bytes:
        try:
            return self._sock.getsockopt(uapi.SOL_TLS, optname, size)
        except OSError as exc:
            raise map_os_error(exc, op) from exc

    def setsockopt_raw(self, optname: int, value: bytes) -> None:
        """setsockopt(SOL_TLS, optname, value) with no checks: for probing the kernel."""
        op = KtlsOp.SET_CRYPTO if optname in (uapi.TLS_TX, uapi.TLS_RX) else KtlsOp.SET_OPTION
        self._setsockopt(uapi.SOL_TLS, optname, value, op)

    # -- ULP and crypto ----------------------------------------------------------------------

    def attach_ulp(self) -> None:
        """setsockopt(IPPROTO_TCP, TCP_ULP, "tls")."""
        self._setsockopt(socket.IPPROTO_TCP, uapi.TCP_ULP, b"tls", KtlsOp.ATTACH_ULP)
        self._ulp_attached = True

    def set_crypto(
        self,
        direction: Direction | str,
        version: int,
        cipher: CipherSpec | str | int,
        key: bytes,
        iv: bytes,
        salt: bytes,
        rec_seq: bytes | int,
    ) -> None:
        """Install raw crypto parameters (a second call in a direction is a rekey).

        Keys installed this way carry no traffic secret, so KeyUpdate handling needs
        :meth:`install` instead.
        """
        info = build_crypto_info(version, cipher, key, iv, salt, rec_seq)
        self._install_info(_direction(direction), info, None)

    def install(self, direction: Direction | str, state: DirectionState) -> None:
        """Install keys from the key schedule (remembered for later KeyUpdate)."""
        if not isinstance(state, DirectionState):
            raise KtlsInputError("install() needs a keyschedule.DirectionState")
        c = state.crypto_info()
        info = build_crypto_info(c.version, c.cipher_type, c.key, c.iv, c.salt, c.rec_seq)
        self._install_info(_direction(direction), info, state)

    def rekey(self, direction: Direction | str, state: DirectionState) -> None:
        """Install new keys where keys are already installed (TLS 1.3 only)."""
        d = _direction(direction)
        if self.strict and d not in self._installed:
            raise KtlsStateError(f"rekey before initial install: no {d.value.upper()} keys")
        self.install(d, state)

    def _install_info(
        self, direction: Direction, info: uapi.CryptoInfo, state: DirectionState | None
    ) -> None:
        current = self._installed.get(direction)
        other = self._installed.get(_other(direction))
        if self.strict:
            is_rekey = check_install(direction, info, current, other)
        else:
            is_rekey = current is not None
        op = KtlsOp.REKEY if is_rekey else KtlsOp.SET_CRYPTO
        self._setsockopt(uapi.SOL_TLS, direction.optname, info.pack(), op)
        self._installed[direction] = info
        if state is None:
            self._states.pop(direction, None)
        else:
            self._states[direction] = state
        if is_rekey:
            if direction is Direction.TX:
                self.counters.tx_rekeys += 1
            else:
                self.counters.rx_rekeys += 1

    def get_crypto(self, direction: Direction | str) -> uapi.CryptoInfo:
        """Read the kernel's crypto_info back (current iv and rec_seq included)."""
        d = _direction(direction)
        header = self._getsockopt(d.optname, uapi.CRYPTO_INFO_HEADER_SIZE, KtlsOp.GET_CRYPTO)
        try:
            _, cipher_type = uapi.unpack_crypto_info_header(header)
            size = uapi.struct_size(cipher_type)
            return uapi.unpack_crypto_info(self._getsockopt(d.optname, size, KtlsOp.GET_CRYPTO))
        except uapi.UapiError as exc:
            raise KtlsOSError(f"{KtlsOp.GET_CRYPTO.value}: unparsable readback: {exc}") from None

    # -- options -----------------------------------------------------------------------------

    def set_tx_zerocopy_ro(self, enable: bool) -> None:
        """TLS_TX_ZEROCOPY_RO: promise that sendfile() data is not modified while in flight."""
        value = _bool_option(enable, "TLS_TX_ZEROCOPY_RO")
        self._setsockopt(uapi.SOL_TLS, uapi.TLS_TX_ZEROCOPY_RO, value, KtlsOp.SET_OPTION)

    def get_tx_zerocopy_ro(self) -> bool:
        """Current TLS_TX_ZEROCOPY_RO setting."""
        raw = self._getsockopt(uapi.TLS_TX_ZEROCOPY_RO, 4, KtlsOp.GET_OPTION)
        return bool(uapi.unpack_u32_option(raw))

    def set_rx_no_pad(self, enable: bool) -> None:
        """TLS_RX_EXPECT_NO_PAD (TLS 1.3 RX only): expect unpadded records, decrypt in place."""
        value = _bool_option(enable, "TLS_RX_EXPECT_NO_PAD")
        self._require_tls13_rx("TLS_RX_EXPECT_NO_PAD")
        self._setsockopt(uapi.SOL_TLS, uapi.TLS_RX_EXPECT_NO_PAD, value, KtlsOp.SET_OPTION)

    def get_rx_no_pad(self) -> bool:
        """Current TLS_RX_EXPECT_NO_PAD setting (TLS 1.3 RX only)."""
        self._require_tls13_rx("TLS_RX_EXPECT_NO_PAD")
        raw = self._getsockopt(uapi.TLS_RX_EXPECT_NO_PAD, 4, KtlsOp.GET_OPTION)
        return bool(uapi.unpack_u32_option(raw))

    def set_tx_max_payload_len(self, length: int) -> None:
        """TLS_TX_MAX_PAYLOAD_LEN: cap the plaintext per TX record (64..16384; 63 in TLS 1.3)."""
        if isinstance(length, bool) or not isinstance(length, int):
            raise KtlsInputError("TLS_TX_MAX_PAYLOAD_LEN must be an int")
        tls13 = any(i.version == uapi.TLS_1_3_VERSION for i in self._installed.values())
        low = uapi.TLS_MIN_RECORD_SIZE_LIM - (1 if tls13 else 0)
        if not low <= length <= uapi.TLS_MAX_PAYLOAD_SIZE:
            raise KtlsInputError(
                f"TLS_TX_MAX_PAYLOAD_LEN must be in {low}..{uapi.TLS_MAX_PAYLOAD_SIZE} "
                f"(63 only with TLS 1.3), got {length}"
            )
        value = uapi.pack_u16_option(length)
        self._setsockopt(uapi.SOL_TLS, uapi.TLS_TX_MAX_PAYLOAD_LEN, value, KtlsOp.SET_OPTION)

    def get_tx_max_payload_len(self) -> int:
        """Current TLS_TX_MAX_PAYLOAD_LEN (16384 unless changed)."""
        raw = self._getsockopt(uapi.TLS_TX_MAX_PAYLOAD_LEN, 2, KtlsOp.GET_OPTION)
        return uapi.unpack_u16_option(raw)

    def _require_tls13_rx(self, what: str) -> None:
        if not self.strict:
            return
        rx = self._installed.get(Direction.RX)
        if rx is None:
            raise KtlsStateError(f"{what} needs RX crypto installed")
        if rx.version != uapi.TLS_1_3_VERSION:
            raise KtlsStateError(f"{what} exists for TLS 1.3 only")

    # -- data --------------------------------------------------------------------------------

    def _require(self, direction: Direction, what: str) -> None:
        if self.strict and direction not in self._installed:
            raise KtlsStateError(
                f"{what}: no {direction.value.upper()} crypto installed; the bytes would "
                "travel as plain TCP"
            )

    def send(self, data: bytes) -> int:
        """Send application data (the kernel frames it into records); returns bytes sent."""
        self._require(Direction.TX, "send")
        view = memoryview(data).cast("B")
        sent = 0
        deadline = self._deadline()
        while sent < len(view):
            sent += self._io(partial(self._sock.send, view[sent:]), select.POLLOUT,
                             KtlsOp.SEND, deadline)
        return sent

    def send_record(self, content_type: int, data: bytes) -> int:
        """Send ``data`` as records of ``content_type`` (TLS_SET_RECORD_TYPE cmsg)."""
        if isinstance(content_type, bool) or not 1 <= int(content_type) <= 0xFF:
            raise KtlsInputError(f"content type must be 1..255, got {content_type!r}")
        if not data and content_type != ContentType.APPLICATION_DATA:
            raise KtlsInputError("only application data records may be empty")
        self._require(Direction.TX, "send_record")
        cmsg = [(uapi.SOL_TLS, uapi.TLS_SET_RECORD_TYPE, bytes([int(content_type)]))]
        view = memoryview(bytes(data))
        sent = 0
        deadline = self._deadline()
        while True:
            sent += self._io(partial(self._sock.sendmsg, [view[sent:]], cmsg), select.POLLOUT,
                             KtlsOp.SEND, deadline)
            if sent >= len(view):
                return sent

    def recv_record(
        self, bufsize: int = DEFAULT_RECV_SIZE, *, auto_key_update: bool | None = None
    ) -> tuple[int, bytes]:
        """Receive one record's worth: ``(content_type, data)`` from TLS_GET_RECORD_TYPE.

        Consecutive application data records may be merged by the kernel; other types come one
        record per call.  ``(EOF_CONTENT_TYPE, b"")`` means the peer closed.  With
        auto KeyUpdate handling, a KeyUpdate record is handled here and still returned.
        """
        if isinstance(bufsize, bool) or not isinstance(bufsize, int) or bufsize < 1:
            raise KtlsInputError(f"bufsize must be a positive int, got {bufsize!r}")
        self._require(Direction.RX, "recv_record")
        data, ancdata, flags = self._recvmsg(bufsize)
        if flags & socket.MSG_CTRUNC:
            raise KtlsRecordTypeError("receive: record type cmsg truncated", op=KtlsOp.RECV)
        content_type = _record_type(ancdata)
        if content_type is None:
            if data:
                raise KtlsRecordTypeError(
                    "receive: data without TLS_GET_RECORD_TYPE cmsg (is RX kTLS installed?)",
                    op=KtlsOp.RECV,
                )
            return EOF_CONTENT_TYPE, b""
        auto = self.auto_key_update if auto_key_update is None else auto_key_update
        if content_type == ContentType.HANDSHAKE:
            if auto:
                self.handle_key_update(data)
            elif is_key_update(data):
                self._rx_key_update_pending = True  # the kernel now holds RX (EKEYEXPIRED)
        return content_type, data

    @property
    def rx_key_update_pending(self) -> bool:
        """A KeyUpdate was received and the next RX key is not installed yet."""
        return self._rx_key_update_pending

    def _recvmsg(self, bufsize: int) -> tuple[bytes, list[tuple[int, int, bytes]], int]:
        """recvmsg with room for the record type cmsg."""
        ancbufsize = socket.CMSG_SPACE(1)
        data, ancdata, flags, _ = self._io(lambda: self._sock.recvmsg(bufsize, ancbufsize),
                                           select.POLLIN, KtlsOp.RECV, self._deadline())
        return data, ancdata, flags

    def _deadline(self) -> float | None:
        return None if self.timeout is None else time.monotonic() + self.timeout

    def _io(self, call: Callable[[], _T], events: int, op: KtlsOp,
            deadline: float | None) -> _T:
        """Make ``call`` on the non-blocking socket; on EAGAIN poll for ``events`` and retry.

        The call always comes first: poll() can hide a record that recvmsg would return (a
        decrypted KeyUpdate queued behind data, see the module docstring), and that state only
        ever arises inside a previous recvmsg, so trying first never misses it.
        """
        while True:
            try:
                return call()
            except BlockingIOError:
                pass
            except OSError as exc:
                raise map_os_error(exc, op) from exc
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                what = "would block" if self.timeout == 0 else \
                    f"no progress within the {self.timeout:g}s timeout"
                raise KtlsTimeoutError(f"{op.value}: {what}", op=op)
            poller = select.poll()
            poller.register(self._sock.fileno(), events)
            poller.poll(None if left is None else max(1, int(left * 1000) + 1))

    def recv(self, bufsize: int = DEFAULT_RECV_SIZE) -> bytes:
        """Receive up to ``bufsize`` bytes of application data.

        Handshake records are skipped (KeyUpdate handled first, tickets dropped); alerts and
        other types raise :class:`KtlsRecordTypeError`.  ``b""`` means the peer closed.
        The kernel is always read with a buffer of a whole record, so a small ``bufsize``
        never truncates a control record (a KeyUpdate is 5 bytes); application data beyond
        ``bufsize`` is kept for the next call.
        """
        if isinstance(bufsize, bool) or not isinstance(bufsize, int) or bufsize < 1:
            raise KtlsInputError(f"bufsize must be a positive int, got {bufsize!r}")
        while not self._rx_data:
            content_type, data = self.recv_record(max(bufsize, DEFAULT_RECV_SIZE + 256),
                                                  auto_key_update=True)
            if content_type == EOF_CONTENT_TYPE:
                return b""
            if content_type == ContentType.APPLICATION_DATA:
                self._rx_data += data
                continue
            if content_type == ContentType.HANDSHAKE:
                continue  # KeyUpdate handled above; NewSessionTicket etc. have no use here
            raise KtlsRecordTypeError(
                f"receive: expected application data, got record type {content_type}",
                op=KtlsOp.RECV,
            )
        out = bytes(self._rx_data[:bufsize])
        del self._rx_data[:bufsize]
        return out

    # -- TLS 1.3 KeyUpdate -------------------------------------------------------------------

    def send_key_update(self, update_requested: bool) -> DirectionState:
        """Send KeyUpdate under the current TX key, then install the next TX key.

        Returns the new TX state.  Everything that can fail for local reasons is checked before
        the KeyUpdate leaves, so the peer never sees a KeyUpdate we cannot follow.
        """
        if not isinstance(update_requested, bool):
            raise KtlsInputError("update_requested must be a bool")
        self._require(Direction.TX, "send_key_update")
        nxt = check_rekey_state(Direction.TX, self._states.get(Direction.TX))
        self.send_record(ContentType.HANDSHAKE, encode_key_update(update_requested))
        self.update_answer_due = False
        self.counters.key_updates_sent += 1
        self.install(Direction.TX, nxt)
        return nxt

    def handle_key_update(self, handshake_data: bytes, *, answer: bool = True) -> bool:
        """Act on a received handshake record: if it ends with KeyUpdate, install the next RX
        key and answer ``update_requested`` with our own KeyUpdate (not requested).

        With ``answer=False`` only RX is touched and :attr:`update_answer_due` says whether
        the peer asked for an update: a program whose TX runs in another thread answers there
        (``send_key_update`` clears the flag), so the receiving thread never waits on TX.
        Returns True if a KeyUpdate was handled, False if the record held none.
        """
        try:
            messages = split_handshake(handshake_data)
        except RecordFormatError as exc:
            raise KtlsInputError(f"malformed handshake record: {exc}") from None
        positions = [i for i, (t, _) in enumerate(messages) if t == HANDSHAKE_KEY_UPDATE]
        if not positions:
            return False
        if positions != [len(messages) - 1]:
            raise KtlsInputError("KeyUpdate must be the last message of its record (RFC 8446)")
        try:
            requested = decode_key_update_body(messages[-1][1])
        except RecordFormatError as exc:
            raise KtlsInputError(str(exc)) from None
        nxt = check_rekey_state(Direction.RX, self._states.get(Direction.RX))
        self.counters.key_updates_received += 1
        self.install(Direction.RX, nxt)
        self._rx_key_update_pending = False
        if requested and answer:
            self.send_key_update(False)
        elif requested:
            self.update_answer_due = True
        return True


def _direction(direction: Direction | str) -> Direction:
    try:
        return Direction(direction)
    except ValueError:
        raise KtlsInputError(f"direction must be 'tx' or 'rx', got {direction!r}") from None


def _other(direction: Direction) -> Direction:
    return Direction.RX if direction is Direction.TX else Direction.TX


def _bool_option(value: bool, name: str) -> bytes:
    if not isinstance(value, bool):
        raise KtlsInputError(f"{name} takes a bool, got {value!r}")
    return uapi.pack_u32_option(int(value))


def _record_type(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, payload in ancdata:
        if level == uapi.SOL_TLS and kind == uapi.TLS_GET_RECORD_TYPE and payload:
            return payload[0]
    return None
