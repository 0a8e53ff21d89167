"""The typed errors of a kTLS socket and the errno mapping behind them.

Every syscall of :class:`ktlskit.ksocket.KtlsSocket` goes through :func:`map_os_error`, so
callers only ever see :class:`KtlsError` subclasses whose message names the cause: the same
errno means different things for different operations (``EBUSY`` on a rekey is TLS 1.2, on a
socket option an open record), so the mapping is keyed by what was being attempted.
"""

from __future__ import annotations

import errno
from enum import StrEnum
from typing import Final

from ktlskit.errors import KtlskitError


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
