"""KtlsSocket on a host without kTLS: refusals before any syscall, errno mapping, and the
kernel's real answers (no TLS ULP here).  Nothing pretends the kernel accepted anything."""

from __future__ import annotations

import errno
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ktlskit import ciphers, ksocket, records, uapi
from ktlskit.errors import KtlskitError
from ktlskit.keyschedule import DirectionState
from ktlskit.ksocket import (
    Direction,
    KtlsError,
    KtlsInputError,
    KtlsOp,
    KtlsRekeyError,
    KtlsSocket,
    KtlsStateError,
)
from ktlskit.records import ContentType

IN_KTLS_GUEST = Path("/proc/net/tls_stat").exists()


class SpySocket(socket.socket):
    """A real socket that records the TLS-relevant calls made on it (to prove none happened)."""

    calls: list[str]

    def _note(self, name: str) -> None:
        if not hasattr(self, "calls"):
            self.calls = []
        self.calls.append(name)

    def setsockopt(self, *args: Any) -> None:  # type: ignore[override]
        self._note("setsockopt")
        super().setsockopt(*args)

    def getsockopt(self, *args: Any) -> Any:  # type: ignore[override]
        self._note("getsockopt")
        return super().getsockopt(*args)

    def sendmsg(self, *args: Any) -> int:  # type: ignore[override]
        self._note("sendmsg")
        return super().sendmsg(*args)

    def sendall(self, *args: Any) -> None:  # type: ignore[override]
        self._note("sendall")
        super().sendall(*args)

    def recvmsg(self, *args: Any) -> Any:  # type: ignore[override]
        self._note("recvmsg")
        return super().recvmsg(*args)


@pytest.fixture
def pair() -> Iterator[tuple[SpySocket, socket.socket]]:
    """A connected loopback TCP pair: (our spy socket, the peer)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        ours = SpySocket(socket.AF_INET, socket.SOCK_STREAM)
        ours.settimeout(5)
        ours.connect(listener.getsockname())
        peer, _ = listener.accept()
        peer.settimeout(0.2)
    ours.calls = []
    try:
        yield ours, peer
    finally:
        ours.close()
        peer.close()


def tls13_state(name: str = "aes-gcm-128") -> DirectionState:
    spec = ciphers.lookup(name)
    return DirectionState.from_tls13_secret(spec, os.urandom(spec.hash_len))


GOOD = {"key": bytes(16), "iv": bytes(8), "salt": bytes(4), "rec_seq": bytes(8)}


# --- the kernel's real answers on this host -----------------------------------------------


@pytest.mark.skipif(IN_KTLS_GUEST, reason="running inside a kTLS kernel: the ULP exists")
def test_attach_ulp_reports_missing_kernel_tls(pair: tuple[SpySocket, socket.socket]) -> None:
    ksock = KtlsSocket(pair[0])
    with pytest.raises(ksocket.KtlsUnavailableError, match=r"kernel has no TLS ULP \(CONFIG_TLS\)"):
        ksock.attach_ulp()
    assert pair[0].calls == ["setsockopt"]


def test_valid_crypto_reaches_the_kernel_which_wants_the_ulp(
    pair: tuple[SpySocket, socket.socket],
) -> None:
    """Valid input is not refused by us: the kernel answers (ENOPROTOOPT without the ULP)."""
    ksock = KtlsSocket(pair[0])
    with pytest.raises(ksocket.KtlsNotAttachedError, match="attach_ulp") as info:
        ksock.set_crypto("tx", uapi.TLS_1_3_VERSION, "aes-gcm-128", **GOOD)
    assert info.value.errno == errno.ENOPROTOOPT
    assert pair[0].calls == ["setsockopt"]
    assert ksock.installed("tx") is None  # nothing recorded as installed
    with pytest.raises(ksocket.KtlsNotAttachedError):
        ksock.get_crypto("rx")
    with pytest.raises(ksocket.KtlsNotAttachedError):
        ksock.get_tx_max_payload_len()
    with pytest.raises(ksocket.KtlsNotAttachedError):
        ksock.set_tx_zerocopy_ro(True)


# --- refused before any syscall -----------------------------------------------------------


@pytest.mark.parametrize(
    ("cipher", "field", "value", "message"),
    [
        ("aes-gcm-128", "key", bytes(32), "key must be 16 bytes, got 32"),
        ("aes-gcm-256", "key", bytes(16), "key must be 32 bytes, got 16"),
        ("aes-gcm-128", "iv", bytes(12), "iv must be 8 bytes, got 12"),
        ("aes-ccm-128", "salt", bytes(0), "salt must be 4 bytes, got 0"),
        ("aes-gcm-128", "rec_seq", bytes(4), "rec_seq must be 8 bytes, got 4"),
        ("chacha20-poly1305", "salt", bytes(4), "salt must be 0 bytes, got 4"),
        ("chacha20-poly1305", "iv", bytes(8), "iv must be 12 bytes, got 8"),
    ],
)
def test_wrong_lengths_refused(
    pair: tuple[SpySocket, socket.socket], cipher: str, field: str, value: bytes, message: str
) -> None:
    spec = ciphers.lookup(cipher)
    args = {"key": bytes(spec.key_size), "iv": bytes(spec.iv_size), "salt": bytes(spec.salt_size)}
    args["rec_seq"] = bytes(8)
    args[field] = value
    with pytest.raises(KtlsInputError, match=message):
        KtlsSocket(pair[0]).set_crypto("rx", uapi.TLS_1_3_VERSION, cipher, **args)
    assert pair[0].calls == []


def test_unknown_cipher_version_and_direction_refused(
    pair: tuple[SpySocket, socket.socket],
) -> None:
    ksock = KtlsSocket(pair[0])
    with pytest.raises(KtlsInputError, match="valid names: aes-gcm-128"):
        ksock.set_crypto("tx", uapi.TLS_1_3_VERSION, "aes-gcm-512", **GOOD)
    with pytest.raises(KtlsInputError, match="cipher_type 60"):
        ksock.set_crypto("tx", uapi.TLS_1_3_VERSION, 60, **GOOD)
    with pytest.raises(KtlsInputError, match=r"TLS 1\.2 .* or 1\.3"):
        ksock.set_crypto("tx", 0x0302, "aes-gcm-128", **GOOD)
    with pytest.raises(KtlsInputError, match=r"TLS 1\.2 only"):
        ksock.set_crypto("tx", uapi.TLS_1_3_VERSION, "aria-gcm-128", **GOOD)
    with pytest.raises(KtlsInputError, match="'tx' or 'rx'"):
        ksock.set_crypto("up", uapi.TLS_1_3_VERSION, "aes-gcm-128", **GOOD)
    with pytest.raises(KtlsInputError, match="64 bits"):
        ksock.set_crypto("tx", uapi.TLS_1_2_VERSION, "aes-gcm-128", GOOD["key"], GOOD["iv"],
                         GOOD["salt"], 1 << 64)  # fmt: skip
    with pytest.raises(KtlsInputError, match="DirectionState"):
        ksock.install("tx", GOOD)  # type: ignore[arg-type]
    assert pair[0].calls == []


def test_option_values_refused(pair: tuple[SpySocket, socket.socket]) -> None:
    ksock = KtlsSocket(pair[0])
    for bad in (0, 62, 63, 16385, True, 4096.0):
        with pytest.raises(KtlsInputError, match="TLS_TX_MAX_PAYLOAD_LEN"):
            ksock.set_tx_max_payload_len(bad)  # type: ignore[arg-type]
    with pytest.raises(KtlsInputError, match="takes a bool"):
        ksock.set_tx_zerocopy_ro(1)  # type: ignore[arg-type]
    with pytest.raises(KtlsInputError, match="takes a bool"):
        ksock.set_rx_no_pad("yes")  # type: ignore[arg-type]
    assert pair[0].calls == []


def test_record_arguments_refused(pair: tuple[SpySocket, socket.socket]) -> None:
    ksock = KtlsSocket(pair[0])
    for bad in (0, 256, -1, True):
        with pytest.raises(KtlsInputError, match=r"content type must be 1\.\.255"):
            ksock.send_record(bad, b"x")
    with pytest.raises(KtlsInputError, match="only application data records may be empty"):
        ksock.send_record(22, b"")
    for size in (0, -5, True):
        with pytest.raises(KtlsInputError, match="bufsize"):
            ksock.recv_record(size)
    with pytest.raises(KtlsInputError, match="must be a bool"):
        ksock.send_key_update(1)  # type: ignore[arg-type]
    assert pair[0].calls == []


def test_non_tcp_socket_refused() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
        pytest.raises(KtlsInputError, match="TCP"),
    ):
        KtlsSocket(udp)


# --- state refusals (before the syscall) ---------------------------------------------------


def test_data_before_keys_is_refused_not_sent_in_clear(
    pair: tuple[SpySocket, socket.socket],
) -> None:
    ours, peer = pair
    ksock = KtlsSocket(ours)
    with pytest.raises(KtlsStateError, match="no TX crypto installed"):
        ksock.send(b"secret")
    with pytest.raises(KtlsStateError, match="no TX crypto installed"):
        ksock.send_record(23, b"secret")
    with pytest.raises(KtlsStateError, match="no RX crypto installed"):
        ksock.recv_record()
    assert ours.calls == []
    with pytest.raises(TimeoutError):
        peer.recv(100)  # nothing went out


def test_rekey_before_initial_install(pair: tuple[SpySocket, socket.socket]) -> None:
    ksock = KtlsSocket(pair[0])
    with pytest.raises(KtlsStateError, match="rekey before initial install"):
        ksock.rekey("tx", tls13_state())
    with pytest.raises(KtlsStateError, match="no TX crypto installed"):
        ksock.send_key_update(True)
    with pytest.raises(KtlsStateError, match="rekey before initial install: no RX keys"):
        ksock.handle_key_update(records.encode_key_update(False))
    with pytest.raises(KtlsStateError, match="needs RX crypto installed"):
        ksock.set_rx_no_pad(True)
    with pytest.raises(KtlsStateError, match="needs RX crypto installed"):
        ksock.get_rx_no_pad()
    assert pair[0].calls == []
    assert ksock.counters == ksocket.RekeyCounters()


def test_handle_key_update_input(pair: tuple[SpySocket, socket.socket]) -> None:
    ksock = KtlsSocket(pair[0])
    ticket = records.encode_handshake(records.HANDSHAKE_NEW_SESSION_TICKET, b"t")
    assert ksock.handle_key_update(ticket) is False  # not a KeyUpdate: nothing to do
    with pytest.raises(KtlsInputError, match="malformed handshake"):
        ksock.handle_key_update(b"\x18\x00\x00")
    with pytest.raises(KtlsInputError, match="last message"):
        ksock.handle_key_update(records.encode_key_update(True) + ticket)
    with pytest.raises(KtlsInputError, match="neither 0 nor 1"):
        ksock.handle_key_update(bytes.fromhex("1800000107"))
    assert pair[0].calls == []


def info(version: int, cipher: str) -> uapi.CryptoInfo:
    spec = ciphers.lookup(cipher)
    return uapi.CryptoInfo(
        version, spec.cipher_type, bytes(spec.key_size), bytes(spec.iv_size),
        bytes(spec.salt_size), bytes(8),
    )  # fmt: skip


def test_check_install_rules() -> None:
    tx, rx = Direction.TX, Direction.RX
    v12, v13 = uapi.TLS_1_2_VERSION, uapi.TLS_1_3_VERSION
    assert ksocket.check_install(tx, info(v13, "aes-gcm-128"), None, None) is False
    assert (
        ksocket.check_install(rx, info(v13, "aes-gcm-128"), None, info(v13, "aes-gcm-128")) is False
    )
    assert (
        ksocket.check_install(tx, info(v13, "aes-gcm-128"), info(v13, "aes-gcm-128"), None) is True
    )
    with pytest.raises(KtlsRekeyError, match=r"TLS 1\.2 does not support rekey"):
        ksocket.check_install(tx, info(v12, "aes-gcm-128"), info(v12, "aes-gcm-128"), None)
    with pytest.raises(KtlsRekeyError, match="cannot change the cipher"):
        ksocket.check_install(rx, info(v13, "aes-gcm-256"), info(v13, "aes-gcm-128"), None)
    with pytest.raises(KtlsRekeyError, match="cannot change the version"):
        ksocket.check_install(rx, info(v12, "aes-gcm-128"), info(v13, "aes-gcm-128"), None)
    with pytest.raises(KtlsStateError, match="same version and cipher as the other direction"):
        ksocket.check_install(rx, info(v13, "chacha20-poly1305"), None, info(v13, "aes-gcm-128"))


def test_check_rekey_state_rules() -> None:
    with pytest.raises(KtlsStateError, match="rekey before initial install"):
        ksocket.check_rekey_state(Direction.TX, None)
    tls12 = DirectionState.from_tls12("aes-gcm-128", bytes(16), bytes(4), 1)
    with pytest.raises(KtlsRekeyError, match=r"TLS 1\.2 does not support rekey"):
        ksocket.check_rekey_state(Direction.TX, tls12)
    raw13 = DirectionState(ciphers.AES_GCM_128, uapi.TLS_1_3_VERSION, bytes(16), bytes(12))
    with pytest.raises(KtlsRekeyError, match="no traffic secret"):
        ksocket.check_rekey_state(Direction.RX, raw13)
    state = tls13_state()
    assert ksocket.check_rekey_state(Direction.RX, state) == state.next()


# --- errno mapping ------------------------------------------------------------------------

MAPPING = [
    (errno.EKEYEXPIRED, KtlsOp.RECV, ksocket.KtlsKeyExpiredError, "RX key update pending"),
    (errno.EBUSY, KtlsOp.REKEY, KtlsRekeyError, r"TLS 1\.2 does not support rekey"),
    (errno.EBUSY, KtlsOp.SET_CRYPTO, KtlsRekeyError, r"TLS 1\.2 does not support rekey"),
    (errno.EINVAL, KtlsOp.REKEY, KtlsRekeyError, "cipher or version changed"),
    (errno.EINVAL, KtlsOp.SET_CRYPTO, ksocket.KtlsConfigError, r"ARIA with TLS 1\.3"),
    (errno.ENOPROTOOPT, KtlsOp.ATTACH_ULP, ksocket.KtlsUnavailableError, "no TLS ULP"),
    (errno.ENOENT, KtlsOp.ATTACH_ULP, ksocket.KtlsUnavailableError, r"\(CONFIG_TLS\)"),
    (errno.EEXIST, KtlsOp.ATTACH_ULP, ksocket.KtlsUlpError, "already attached"),
    (errno.ENOTCONN, KtlsOp.ATTACH_ULP, ksocket.KtlsUlpError, "ESTABLISHED"),
    (errno.ENOPROTOOPT, KtlsOp.SET_CRYPTO, ksocket.KtlsNotAttachedError, "attach_ulp"),
    (errno.ENOENT, KtlsOp.SET_CRYPTO, ksocket.KtlsNotSupportedError, "CONFIG_CRYPTO"),
    (errno.EBUSY, KtlsOp.GET_CRYPTO, ksocket.KtlsNotInstalledError, "no crypto installed"),
    (errno.EOPNOTSUPP, KtlsOp.GET_CRYPTO, ksocket.KtlsNotAttachedError, "attach_ulp"),
    (errno.EOPNOTSUPP, KtlsOp.GET_OPTION, ksocket.KtlsNotAttachedError, "attach_ulp"),
    (errno.EBUSY, KtlsOp.SET_OPTION, ksocket.KtlsBusyError, "open TX record"),
    (errno.EINVAL, KtlsOp.SET_OPTION, ksocket.KtlsConfigError, "option value"),
    (errno.EBADMSG, KtlsOp.RECV, ksocket.KtlsDecryptError, "decrypt or authenticate"),
    (errno.EBADMSG, KtlsOp.SEND, ksocket.KtlsDecryptError, "earlier TLS error"),
    (errno.EMSGSIZE, KtlsOp.RECV, ksocket.KtlsMessageSizeError, "too long"),
    (errno.EOPNOTSUPP, KtlsOp.SEND, ksocket.KtlsNotSupportedError, "not supported"),
    (errno.EIO, KtlsOp.RECV, ksocket.KtlsRecordTypeError, "TLS_GET_RECORD_TYPE"),
    (errno.EINVAL, KtlsOp.SEND, ksocket.KtlsConfigError, "MSG_MORE"),
    (errno.EPIPE, KtlsOp.SEND, ksocket.KtlsConnectionError, "EPIPE"),
    (errno.ECONNRESET, KtlsOp.RECV, ksocket.KtlsConnectionError, "reset"),
    (errno.EAGAIN, KtlsOp.RECV, ksocket.KtlsTimeoutError, "would block"),
    (errno.ENOSPC, KtlsOp.SEND, ksocket.KtlsOSError, "ENOSPC"),
]


@pytest.mark.parametrize(("err", "op", "cls", "pattern"), MAPPING)
def test_errno_mapping(err: int, op: KtlsOp, cls: type[KtlsError], pattern: str) -> None:
    exc = ksocket.map_errno(err, op)
    assert type(exc) is cls
    assert isinstance(exc, KtlskitError)
    assert not isinstance(exc, OSError)
    assert exc.errno == err and exc.op is op
    assert errno.errorcode[err] in str(exc)
    assert op.value in str(exc)
    assert re.search(pattern, str(exc))


def test_map_os_error() -> None:
    assert isinstance(
        ksocket.map_os_error(TimeoutError("timed out"), KtlsOp.RECV), ksocket.KtlsTimeoutError
    )
    mapped = ksocket.map_os_error(OSError(errno.EKEYEXPIRED, "Key has expired"), KtlsOp.RECV)
    assert isinstance(mapped, ksocket.KtlsKeyExpiredError)
    assert isinstance(ksocket.map_os_error(OSError("odd"), KtlsOp.SEND), ksocket.KtlsOSError)


# --- against the kernel, where there is one (a kTLS guest) ---------------------------------


def _kernel_has_ktls() -> bool:
    with (
        socket.create_server(("127.0.0.1", 0)) as listener,
        socket.create_connection(listener.getsockname(), timeout=2) as probe,
    ):
        conn, _ = listener.accept()
        with conn:
            try:
                KtlsSocket(probe).attach_ulp()
            except ksocket.KtlsUnavailableError:
                return False
    return True


HAVE_KTLS = _kernel_has_ktls()
needs_ktls = pytest.mark.skipif(not HAVE_KTLS, reason="kernel has no TLS ULP (kTLS guest only)")


def random_state(cipher: ciphers.CipherSpec, version: int, seq: int = 0) -> DirectionState:
    if version == uapi.TLS_1_3_VERSION:
        return DirectionState.from_tls13_secret(cipher, os.urandom(cipher.hash_len), seq)
    iv = os.urandom(cipher.tls12_fixed_iv_size)
    return DirectionState.from_tls12(cipher, os.urandom(cipher.key_size), iv, seq)


class RefPeer:
    """The far end of a kTLS socket, speaking through the reference record layer."""

    def __init__(self, sock: socket.socket, tx: DirectionState, rx: DirectionState) -> None:
        self.sock = sock
        self.tx, self.rx = records.RecordProtection(tx), records.RecordProtection(rx)
        self.parser = records.RecordParser()
        self.queue: list[records.RawRecord] = []

    def record(self) -> records.RawRecord:
        while not self.queue:
            chunk = self.sock.recv(65536)
            assert chunk, "kTLS side closed"
            self.queue += self.parser.feed(chunk)
        return self.queue.pop(0)

    def read(self) -> tuple[int, bytes]:
        return self.rx.open(self.record())


@pytest.fixture
def ktls_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        ours = socket.create_connection(listener.getsockname(), timeout=5)
        far, _ = listener.accept()
        far.settimeout(5)
    try:
        yield ours, far
    finally:
        ours.close()
        far.close()


def setup_ktls(
    pair: tuple[socket.socket, socket.socket], cipher: ciphers.CipherSpec, version: int, **kw: Any
) -> tuple[KtlsSocket, RefPeer]:
    ours, far = pair
    tx, rx = random_state(cipher, version, 3), random_state(cipher, version, 7)
    ksock = KtlsSocket(ours, **kw)
    ksock.attach_ulp()
    ksock.install("tx", tx)
    ksock.install("rx", rx)
    return ksock, RefPeer(far, tx=rx, rx=tx)


KERNEL_CASES = [
    (c, v)
    for c in ciphers.available()
    for v in (uapi.TLS_1_2_VERSION, uapi.TLS_1_3_VERSION)
    if v == uapi.TLS_1_2_VERSION or c.kernel_tls13
]


@needs_ktls
@pytest.mark.parametrize(
    ("cipher", "version"),
    KERNEL_CASES,
    ids=[f"{c.name}-{'tls13' if v == 0x0304 else 'tls12'}" for c, v in KERNEL_CASES],
)
def test_kernel_records_match_the_reference(
    ktls_pair: tuple[socket.socket, socket.socket], cipher: ciphers.CipherSpec, version: int
) -> None:
    ksock, peer = setup_ktls(ktls_pair, cipher, version)
    readback = ksock.get_crypto("tx")
    assert (readback.key, readback.salt, readback.rec_seq_int) == (
        ksock.installed("tx").key,  # type: ignore[union-attr]
        ksock.installed("tx").salt,  # type: ignore[union-attr]
        3,
    )
    data = os.urandom(40000)
    ksock.send(data)
    got = b""
    while len(got) < len(data):
        content_type, chunk = peer.read()
        assert content_type == ContentType.APPLICATION_DATA
        assert len(chunk) <= records.MAX_PLAINTEXT
        got += chunk
    assert got == data
    ksock.send_record(ContentType.ALERT, b"\x01\x00")
    assert peer.read() == (ContentType.ALERT, b"\x01\x00")
    assert ksock.get_crypto("tx").rec_seq_int == peer.rx.seq
    # reference -> kernel, including a non-data record
    peer.sock.sendall(peer.tx.seal_many(ContentType.APPLICATION_DATA, b"reference says hi"))
    assert ksock.recv_record() == (ContentType.APPLICATION_DATA, b"reference says hi")
    peer.sock.sendall(peer.tx.seal(ContentType.HANDSHAKE, b"\x04\x00\x00\x01\x00"))
    assert ksock.recv_record() == (ContentType.HANDSHAKE, b"\x04\x00\x00\x01\x00")
    assert ksock.get_crypto("rx").rec_seq_int == peer.tx.seq


@needs_ktls
@pytest.mark.parametrize("cipher", [ciphers.ARIA_GCM_128, ciphers.ARIA_GCM_256])
def test_kernel_aria_tls12_between_two_ktls_sockets(
    ktls_pair: tuple[socket.socket, socket.socket], cipher: ciphers.CipherSpec
) -> None:
    a, b = (KtlsSocket(s) for s in ktls_pair)
    one, two = random_state(cipher, 0x0303, 1), random_state(cipher, 0x0303, 1)
    for ksock, tx, rx in ((a, one, two), (b, two, one)):
        ksock.attach_ulp()
        ksock.install("tx", tx)
        ksock.install("rx", rx)
    a.send(b"aria over kTLS")
    assert b.recv() == b"aria over kTLS"


@needs_ktls
def test_kernel_tls13_rekey_with_reference_peer(
    ktls_pair: tuple[socket.socket, socket.socket],
) -> None:
    ksock, peer = setup_ktls(ktls_pair, ciphers.CHACHA20_POLY1305, uapi.TLS_1_3_VERSION)
    ksock.send_key_update(True)
    content_type, message = peer.read()
    assert (content_type, records.decode_key_update(message)) == (ContentType.HANDSHAKE, True)
    peer.rx.key_update()
    ksock.send(b"new tx key")
    assert peer.read() == (ContentType.APPLICATION_DATA, b"new tx key")
    # the far end answers and switches its own TX key
    peer.sock.sendall(peer.tx.seal(ContentType.HANDSHAKE, records.encode_key_update(False)))
    peer.tx.key_update()
    peer.sock.sendall(peer.tx.seal(ContentType.APPLICATION_DATA, b"new rx key"))
    assert ksock.recv() == b"new rx key"
    assert ksock.counters == ksocket.RekeyCounters(1, 1, 1, 1)
    # a KeyUpdate from the far end that requests one back
    peer.sock.sendall(peer.tx.seal(ContentType.HANDSHAKE, records.encode_key_update(True)))
    peer.tx.key_update()
    peer.sock.sendall(peer.tx.seal(ContentType.APPLICATION_DATA, b"answer me"))
    assert ksock.recv() == b"answer me"
    content_type, message = peer.read()
    assert (content_type, records.decode_key_update(message)) == (ContentType.HANDSHAKE, False)
    peer.rx.key_update()
    ksock.send(b"after answering")
    assert peer.read() == (ContentType.APPLICATION_DATA, b"after answering")
    assert ksock.counters == ksocket.RekeyCounters(2, 2, 2, 2)


@needs_ktls
def test_kernel_options(ktls_pair: tuple[socket.socket, socket.socket]) -> None:
    ksock, peer = setup_ktls(ktls_pair, ciphers.AES_GCM_128, uapi.TLS_1_3_VERSION)
    assert ksock.get_tx_max_payload_len() == uapi.TLS_MAX_PAYLOAD_SIZE
    ksock.set_tx_max_payload_len(1000)
    assert ksock.get_tx_max_payload_len() == 1000
    ksock.send(bytes(2500))
    assert [len(peer.read()[1]) for _ in range(3)] == [1000, 1000, 500]
    ksock.set_tx_max_payload_len(63)  # TLS 1.3 allows one less (the content type byte)
    assert not ksock.get_tx_zerocopy_ro()
    ksock.set_tx_zerocopy_ro(True)
    assert ksock.get_tx_zerocopy_ro()
    assert not ksock.get_rx_no_pad()
    ksock.set_rx_no_pad(True)
    assert ksock.get_rx_no_pad()
    peer.sock.sendall(peer.tx.seal(ContentType.APPLICATION_DATA, b"unpadded"))
    assert ksock.recv() == b"unpadded"
    # a padded record is still accepted (the kernel retries without zero-copy)
    peer.sock.sendall(peer.tx.seal(ContentType.APPLICATION_DATA, b"padded", padding=32))
    assert ksock.recv() == b"padded"


@needs_ktls
def test_kernel_errno_answers(ktls_pair: tuple[socket.socket, socket.socket]) -> None:
    ours, _far = ktls_pair
    ksock = KtlsSocket(ours, strict=False)
    ksock.attach_ulp()
    with pytest.raises(ksocket.KtlsUlpError, match="already attached") as info:
        ksock.attach_ulp()
    assert info.value.errno == errno.EEXIST
    with pytest.raises(ksocket.KtlsNotInstalledError) as busy:
        ksock.get_crypto("tx")
    assert busy.value.errno == errno.EBUSY
    with pytest.raises(ksocket.KtlsConfigError) as inval:
        # ARIA with TLS 1.3 is an input error for us even with strict=False; ask the kernel raw
        ksock.setsockopt_raw(uapi.TLS_TX, uapi.pack_crypto_info(uapi.TLS_1_3_VERSION, 57, **GOOD))
    assert inval.value.errno == errno.EINVAL
    tls12 = random_state(ciphers.AES_GCM_128, uapi.TLS_1_2_VERSION, 1)
    ksock.install("tx", tls12)
    with pytest.raises(KtlsRekeyError, match=r"TLS 1\.2 does not support rekey") as rekey:
        ksock.install("tx", tls12)  # strict=False: the kernel's EBUSY
    assert rekey.value.errno == errno.EBUSY
    with pytest.raises(ksocket.KtlsConfigError) as mismatch:
        ksock.install("rx", random_state(ciphers.AES_GCM_256, uapi.TLS_1_2_VERSION))
    assert mismatch.value.errno == errno.EINVAL
    with pytest.raises(ksocket.KtlsConfigError):  # TLS_RX_EXPECT_NO_PAD is TLS 1.3 only
        ksock.set_rx_no_pad(True)


@needs_ktls
def test_kernel_rekey_with_changed_cipher(ktls_pair: tuple[socket.socket, socket.socket]) -> None:
    ksock = KtlsSocket(ktls_pair[0], strict=False)
    ksock.attach_ulp()
    ksock.install("tx", random_state(ciphers.AES_GCM_128, uapi.TLS_1_3_VERSION))
    with pytest.raises(KtlsRekeyError, match="cipher or version changed") as info:
        ksock.install("tx", random_state(ciphers.AES_GCM_256, uapi.TLS_1_3_VERSION))
    assert info.value.errno == errno.EINVAL


@needs_ktls
def test_kernel_decrypt_error(ktls_pair: tuple[socket.socket, socket.socket]) -> None:
    ksock, peer = setup_ktls(ktls_pair, ciphers.AES_GCM_256, uapi.TLS_1_3_VERSION)
    record = bytearray(peer.tx.seal(ContentType.APPLICATION_DATA, b"tampered"))
    record[-1] ^= 1
    peer.sock.sendall(bytes(record))
    with pytest.raises(ksocket.KtlsDecryptError) as info:
        ksock.recv_record()
    assert info.value.errno == errno.EBADMSG


@needs_ktls
def test_kernel_record_too_long(ktls_pair: tuple[socket.socket, socket.socket]) -> None:
    ksock, peer = setup_ktls(ktls_pair, ciphers.AES_GCM_128, uapi.TLS_1_2_VERSION)
    too_long = records.MAX_PLAINTEXT + 8 + 16 + 1
    # the kernel needs header + explicit nonce (prepend_size) before it judges the length
    peer.sock.sendall(records.make_header(ContentType.APPLICATION_DATA, too_long) + bytes(8))
    with pytest.raises(ksocket.KtlsMessageSizeError) as info:
        ksock.recv_record()
    assert info.value.errno == errno.EMSGSIZE
