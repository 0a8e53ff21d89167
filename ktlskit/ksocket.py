"""``KtlsSocket``: a connected TCP socket driven through the kernel TLS ULP.

Every syscall goes through :func:`map_os_error` (``ktlserrors.py``), so callers only ever see
:class:`KtlsError` subclasses whose message names the cause; crypto_info is built and checked
in ``cryptoinfo.py``; both modules' names are re-exported here.  Input is validated before
any syscall.  State checks (rekey on TLS 1.2, cipher/version change on rekey, send before TX
keys, ...) are also made before the syscall unless the socket is built with ``strict=False``,
which lets kernel tests send the request anyway and observe the kernel's own answer.

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

import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Final, TypeVar

from ktlskit import uapi
from ktlskit.ciphers import CipherSpec
from ktlskit.cryptoinfo import (
    Direction,
    build_crypto_info,
    check_install,
    check_rekey_state,
)
from ktlskit.keyschedule import DirectionState
from ktlskit.ktlserrors import (
    KtlsBusyError,
    KtlsConfigError,
    KtlsConnectionError,
    KtlsDecryptError,
    KtlsError,
    KtlsInputError,
    KtlsKeyExpiredError,
    KtlsMessageSizeError,
    KtlsNotAttachedError,
    KtlsNotInstalledError,
    KtlsNotSupportedError,
    KtlsOp,
    KtlsOSError,
    KtlsRecordTypeError,
    KtlsRekeyError,
    KtlsStateError,
    KtlsTimeoutError,
    KtlsUlpError,
    KtlsUnavailableError,
    map_errno,
    map_os_error,
)
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

__all__ = [
    "DEFAULT_RECV_SIZE",
    "EOF_CONTENT_TYPE",
    "Direction",
    "KtlsBusyError",
    "KtlsConfigError",
    "KtlsConnectionError",
    "KtlsDecryptError",
    "KtlsError",
    "KtlsInputError",
    "KtlsKeyExpiredError",
    "KtlsMessageSizeError",
    "KtlsNotAttachedError",
    "KtlsNotInstalledError",
    "KtlsNotSupportedError",
    "KtlsOSError",
    "KtlsOp",
    "KtlsRecordTypeError",
    "KtlsRekeyError",
    "KtlsSocket",
    "KtlsStateError",
    "KtlsTimeoutError",
    "KtlsUlpError",
    "KtlsUnavailableError",
    "RekeyCounters",
    "build_crypto_info",
    "check_install",
    "check_rekey_state",
    "map_errno",
    "map_os_error",
]

_T = TypeVar("_T")

EOF_CONTENT_TYPE: Final = 0
"""``recv_record`` returns ``(EOF_CONTENT_TYPE, b"")`` on orderly shutdown (0 is no TLS type)."""

DEFAULT_RECV_SIZE: Final = MAX_PLAINTEXT


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
