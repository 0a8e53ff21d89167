"""Hand a TCP connection from a real TLS stack (the stdlib ``ssl`` module) to kTLS.

How the hand-off keeps every byte:

``SSLSocket.unwrap()`` would send close_notify and ``SSLSocket`` reads ahead, so neither is
usable.  Instead OpenSSL runs as an ``SSLObject`` over two ``MemoryBIO``s and this module moves
the bytes: it reads the TCP socket *one whole record at a time* (exactly 5 header bytes, then
exactly the announced length) and feeds each record to OpenSSL only while the handshake is not
complete.  So when ``do_handshake()`` returns, nothing past the peer's last handshake record has
been taken from the kernel's receive queue; the first post-handshake record is still in the
socket for kTLS RX.  Anything fed to OpenSSL but left unconsumed would be returned in
``HandoffResult.leftover`` (by construction it is empty; it is checked, not assumed).

Secrets come from ``SSLContext.keylog_filename`` (NSS key log format), matched by the
ClientHello random that passes through our hands.  Session tickets are disabled
(``OP_NO_TICKET``; servers also ``num_tickets = 0``) so no post-handshake ticket record
shifts the record sequence: TLS 1.3 application records start at 0.

TLS 1.2 is supported too: the key log gives the master secret (``CLIENT_RANDOM`` line), the
server random is read from the plaintext ServerHello that passes through our hands, and the key
block is expanded with the TLS 1.2 PRF.  After the handshake each direction has used record 0
for Finished, so TLS 1.2 application records start at 1.  Only AEAD suites that kTLS knows are
accepted (AES-GCM, AES-CCM with 16-byte tags, ChaCha20-Poly1305, ARIA-GCM).
A peer that sends TLS 1.3 session tickets anyway (a foreign server) is fine: they arrive later
as handshake records through kTLS RX.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ktlskit import uapi
from ktlskit.ciphers import CipherSpec, UnknownCipherError, by_tls13_suite, lookup
from ktlskit.errors import KtlskitError
from ktlskit.keyschedule import DirectionState, tls12_key_block
from ktlskit.ksocket import Direction, KtlsSocket
from ktlskit.records import (
    MAX_ANY_FRAGMENT,
    RECORD_HEADER_SIZE,
    ContentType,
    RecordProtection,
)

DEFAULT_TIMEOUT: Final = 10.0
_HS_CLIENT_HELLO: Final = 1
_HS_SERVER_HELLO: Final = 2
_RANDOM_OFFSET: Final = 4 + 2  # handshake header + legacy_version
_RANDOM_SIZE: Final = 32
_RECORD_TYPES: Final = frozenset(int(t) for t in ContentType)


class HandshakeError(KtlskitError):
    """The TLS handshake or the hand-off failed."""


class KeylogError(HandshakeError):
    """The key log lacks the secrets for this connection, or is malformed."""


# --- NSS key log ----------------------------------------------------------------------------


def parse_keylog(text: str) -> dict[bytes, dict[str, bytes]]:
    """NSS key log -> {client_random: {label: secret}}; comments and blank lines skipped."""
    out: dict[bytes, dict[str, bytes]] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 3:
            raise KeylogError(f"key log line {lineno}: expected 3 fields, got {len(parts)}")
        label, random_hex, secret_hex = parts
        try:
            client_random, secret = bytes.fromhex(random_hex), bytes.fromhex(secret_hex)
        except ValueError:
            raise KeylogError(f"key log line {lineno}: bad hex") from None
        if len(client_random) != _RANDOM_SIZE:
            raise KeylogError(f"key log line {lineno}: client_random is not 32 bytes")
        out.setdefault(client_random, {})[label] = secret
    return out


def secrets_for(keylog_text: str, client_random: bytes) -> dict[str, bytes]:
    """The key log entries of one connection."""
    entries = parse_keylog(keylog_text).get(client_random)
    if not entries:
        raise KeylogError(f"no key log entries for client_random {client_random.hex()}")
    return entries


# --- cipher mapping -------------------------------------------------------------------------

_TLS12_NAMES: Final[tuple[tuple[str, str], ...]] = (
    ("AES128-GCM", "aes-gcm-128"),
    ("AES256-GCM", "aes-gcm-256"),
    ("CHACHA20-POLY1305", "chacha20-poly1305"),
    ("ARIA128-GCM", "aria-gcm-128"),
    ("ARIA256-GCM", "aria-gcm-256"),
)


def cipher_from_openssl(name: str, version: int) -> CipherSpec:
    """Our cipher for an OpenSSL suite name as reported by ``SSLObject.cipher()``."""
    if version == uapi.TLS_1_3_VERSION:
        try:
            return by_tls13_suite(name)
        except UnknownCipherError as exc:
            raise HandshakeError(f"negotiated TLS 1.3 suite has no kTLS cipher: {exc}") from None
    parts = name.split("-")
    if "CCM" in parts and "CCM8" not in parts and "AES128" in parts:
        return lookup("aes-ccm-128")
    for fragment, ours in _TLS12_NAMES:
        if fragment in name:
            return lookup(ours)
    raise HandshakeError(f"negotiated TLS 1.2 suite {name!r} is not a kTLS AEAD suite")


def _version_number(name: str | None) -> int:
    versions = {"TLSv1.2": uapi.TLS_1_2_VERSION, "TLSv1.3": uapi.TLS_1_3_VERSION}
    if name not in versions:
        raise HandshakeError(f"negotiated {name}; kTLS supports TLS 1.2 and 1.3 only")
    return versions[name]


# --- contexts -------------------------------------------------------------------------------


def prepare_context(context: ssl.SSLContext, server_side: bool) -> None:
    """Switch off what would put records between the handshake and kTLS.

    Sets ``OP_NO_TICKET`` and ``OP_NO_RENEGOTIATION``; on a server also ``num_tickets = 0``.
    """
    context.options |= ssl.OP_NO_TICKET | ssl.OP_NO_RENEGOTIATION
    if server_side:
        context.num_tickets = 0


def make_client_context(*, verify: bool = True, cafile: str | None = None) -> ssl.SSLContext:
    """A TLS 1.2/1.3 client context prepared for hand-off."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cafile:
        context.load_verify_locations(cafile)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    prepare_context(context, server_side=False)
    return context


def make_server_context(certfile: str, keyfile: str | None = None) -> ssl.SSLContext:
    """A TLS 1.2/1.3 server context prepared for hand-off."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    prepare_context(context, server_side=True)
    return context


@contextlib.contextmanager
def _keylog(context: ssl.SSLContext) -> Iterator[Path]:
    """The key log file to read: the caller's, or a private temporary one for this call.

    A private file is set on the context for the duration only, so concurrent hand-offs that
    share one context must set ``keylog_filename`` themselves.
    """
    if context.keylog_filename:
        yield Path(context.keylog_filename)
        return
    fd, name = tempfile.mkstemp(prefix="ktlskit-keylog-")
    os.close(fd)
    context.keylog_filename = name
    try:
        yield Path(name)
    finally:
        context.keylog_filename = None  # type: ignore[assignment]
        with contextlib.suppress(OSError):
            os.unlink(name)


# --- result ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HandoffResult:
    """A finished handshake whose connection continues on the raw TCP socket."""

    sock: socket.socket
    server_side: bool
    version: int
    cipher: CipherSpec
    suite: str
    """The suite name as OpenSSL reports it."""
    tx: DirectionState
    rx: DirectionState
    client_random: bytes
    leftover: bytes = b""
    """Already-received post-handshake bytes (empty by construction; see module docstring)."""

    @property
    def tx_secret(self) -> bytes | None:
        """Our TLS 1.3 sending traffic secret (None for TLS 1.2)."""
        return self.tx.secret

    @property
    def rx_secret(self) -> bytes | None:
        """The peer's TLS 1.3 sending traffic secret (None for TLS 1.2)."""
        return self.rx.secret

    @property
    def tx_crypto_info(self) -> uapi.CryptoInfo:
        """Kernel crypto_info for TLS_TX."""
        return self.tx.crypto_info()

    @property
    def rx_crypto_info(self) -> uapi.CryptoInfo:
        """Kernel crypto_info for TLS_RX."""
        return self.rx.crypto_info()

    def reference_layer(self) -> tuple[RecordProtection, RecordProtection]:
        """(tx, rx) userspace record protection continuing this connection (no kTLS)."""
        return RecordProtection(self.tx), RecordProtection(self.rx)

    def to_ktls(self, *, auto_key_update: bool = True) -> KtlsSocket:
        """Attach the TLS ULP and install both directions; the socket then speaks kTLS."""
        if self.leftover:
            raise HandshakeError(
                f"{len(self.leftover)} post-handshake bytes were already read; kTLS RX would "
                "miss them"
            )
        ksock = KtlsSocket(self.sock, auto_key_update=auto_key_update)
        ksock.attach_ulp()
        ksock.install(Direction.TX, self.tx)
        ksock.install(Direction.RX, self.rx)
        return ksock


# --- the handshake pump ---------------------------------------------------------------------


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        try:
            chunk = sock.recv(size - len(buf))
        except TimeoutError:
            raise HandshakeError("timed out waiting for the peer during the handshake") from None
        except OSError as exc:
            raise HandshakeError(f"socket error during the handshake: {exc}") from exc
        if not chunk:
            raise HandshakeError("peer closed the connection during the handshake")
        buf += chunk
    return bytes(buf)


def _read_record(sock: socket.socket) -> bytes:
    """Exactly one TLS record from the socket (never a byte more)."""
    header = _recv_exact(sock, RECORD_HEADER_SIZE)
    if header[0] not in _RECORD_TYPES or header[1] != 3:
        raise HandshakeError(f"peer sent something that is not a TLS record: {header.hex()}")
    length = int.from_bytes(header[3:5], "big")
    if length > MAX_ANY_FRAGMENT:
        raise HandshakeError(f"peer record of {length} bytes exceeds the TLS limit")
    return header + _recv_exact(sock, length)


class _HelloWatcher:
    """Collects one direction's plaintext handshake bytes to pick out a hello random."""

    def __init__(self, hello_type: int) -> None:
        self._hello_type = hello_type
        self._buf = bytearray()
        self._pending = bytearray()
        self.random: bytes | None = None

    def see(self, data: bytes) -> None:
        """Inspect raw record bytes flowing in this direction."""
        if self.random is not None:
            return
        self._pending += data
        while len(self._pending) >= RECORD_HEADER_SIZE:
            length = int.from_bytes(self._pending[3:5], "big")
            end = RECORD_HEADER_SIZE + length
            if len(self._pending) < end:
                return
            if self._pending[0] == ContentType.HANDSHAKE:
                self._buf += self._pending[RECORD_HEADER_SIZE:end]
            del self._pending[:end]
            if len(self._buf) >= _RANDOM_OFFSET + _RANDOM_SIZE:
                if self._buf[0] != self._hello_type:
                    raise HandshakeError(
                        f"first handshake message is type {self._buf[0]}, "
                        f"expected {self._hello_type}"
                    )
                self.random = bytes(self._buf[_RANDOM_OFFSET : _RANDOM_OFFSET + _RANDOM_SIZE])
                return


def _flush(sock: socket.socket, outgoing: ssl.MemoryBIO, sent: _HelloWatcher) -> None:
    data = outgoing.read()
    if data:
        sent.see(data)
        try:
            sock.sendall(data)
        except OSError as exc:
            raise HandshakeError(f"socket error during the handshake: {exc}") from exc


def _pump(
    sock: socket.socket, sslobj: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO
) -> tuple[bytes, bytes | None]:
    """Run the handshake; returns (client_random, server_random)."""
    server_side = sslobj.server_side
    client_hello = _HelloWatcher(_HS_CLIENT_HELLO)
    server_hello = _HelloWatcher(_HS_SERVER_HELLO)
    sent, received = (server_hello, client_hello) if server_side else (client_hello, server_hello)
    while True:
        try:
            sslobj.do_handshake()
            break
        except ssl.SSLWantReadError:
            _flush(sock, outgoing, sent)
            record = _read_record(sock)
            received.see(record)
            incoming.write(record)
        except ssl.SSLError as exc:
            with contextlib.suppress(HandshakeError):
                _flush(sock, outgoing, sent)  # deliver OpenSSL's alert if it made one
            raise HandshakeError(f"TLS handshake failed: {exc}") from exc
    _flush(sock, outgoing, sent)
    if client_hello.random is None:
        raise HandshakeError("ClientHello random not seen")
    return client_hello.random, server_hello.random


def _states(
    version: int,
    cipher: CipherSpec,
    secrets: dict[str, bytes],
    server_side: bool,
    client_random: bytes,
    server_random: bytes | None,
) -> tuple[DirectionState, DirectionState]:
    """(tx, rx) states from the key log secrets."""
    if version == uapi.TLS_1_3_VERSION:
        try:
            client = secrets["CLIENT_TRAFFIC_SECRET_0"]
            server = secrets["SERVER_TRAFFIC_SECRET_0"]
        except KeyError as exc:
            raise KeylogError(f"key log lacks {exc.args[0]}") from None
        c_state = DirectionState.from_tls13_secret(cipher, client)
        s_state = DirectionState.from_tls13_secret(cipher, server)
    else:
        if "CLIENT_RANDOM" not in secrets:
            raise KeylogError("key log lacks the TLS 1.2 CLIENT_RANDOM master secret")
        if server_random is None:
            raise HandshakeError("ServerHello random not seen")
        block = tls12_key_block(cipher, secrets["CLIENT_RANDOM"], client_random, server_random)
        # Finished used record 0 in each direction.
        c_state = DirectionState.from_tls12(
            cipher, block.client_write_key, block.client_write_iv, 1
        )
        s_state = DirectionState.from_tls12(
            cipher, block.server_write_key, block.server_write_iv, 1
        )
    return (s_state, c_state) if server_side else (c_state, s_state)


def _handoff(
    sock: socket.socket,
    context: ssl.SSLContext,
    server_side: bool,
    server_hostname: str | None,
    timeout: float | None,
) -> HandoffResult:
    if sock.type != socket.SOCK_STREAM:
        raise HandshakeError("hand-off needs a connected TCP socket")
    prepare_context(context, server_side)
    old_timeout = sock.gettimeout()
    sock.settimeout(timeout)
    try:
        with _keylog(context) as keylog_path:
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            try:
                sslobj = context.wrap_bio(
                    incoming, outgoing, server_side=server_side, server_hostname=server_hostname
                )
            except (ValueError, ssl.SSLError) as exc:
                raise HandshakeError(f"cannot start TLS: {exc}") from exc
            client_random, server_random = _pump(sock, sslobj, incoming, outgoing)
            keylog_text = keylog_path.read_text()
    finally:
        sock.settimeout(old_timeout)
    version = _version_number(sslobj.version())
    cipher_info = sslobj.cipher()
    if cipher_info is None:
        raise HandshakeError("no cipher negotiated")
    cipher = cipher_from_openssl(cipher_info[0], version)
    secrets = secrets_for(keylog_text, client_random)
    tx, rx = _states(version, cipher, secrets, server_side, client_random, server_random)
    leftover = incoming.read() if incoming.pending else b""
    return HandoffResult(
        sock=sock,
        server_side=server_side,
        version=version,
        cipher=cipher,
        suite=cipher_info[0],
        tx=tx,
        rx=rx,
        client_random=client_random,
        leftover=leftover,
    )


def handoff_client(
    sock: socket.socket,
    context: ssl.SSLContext | None = None,
    *,
    server_hostname: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> HandoffResult:
    """Run a TLS client handshake on connected ``sock`` and hand the keys over.

    ``context`` defaults to a verifying client context; it is modified by
    :func:`prepare_context`.  ``timeout`` bounds each socket operation of the handshake.
    """
    ctx = context or make_client_context()
    if ctx.check_hostname and not server_hostname:
        raise HandshakeError("cannot start TLS: check_hostname needs server_hostname")
    return _handoff(sock, ctx, False, server_hostname, timeout)


def handoff_server(
    sock: socket.socket,
    context: ssl.SSLContext,
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> HandoffResult:
    """Run a TLS server handshake on accepted ``sock`` and hand the keys over."""
    return _handoff(sock, context, True, None, timeout)
