"""Keys, kTLS socket pairs and the traffic patterns of the offload cases."""

from __future__ import annotations

import errno
import hashlib
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .. import uapi
from ..ciphers import lookup
from ..keyschedule import DirectionState
from .netns import IO_TIMEOUT, PORT, CaseFailure, connect

Facts = dict[str, object]
VERSIONS = {"1.2": uapi.TLS_1_2_VERSION, "1.3": uapi.TLS_1_3_VERSION}
CIPHERS = ("aes-gcm-128", "aes-gcm-256")


@dataclass(frozen=True)
class Suite:
    """What a case's connections use: TLS version (``1.2``/``1.3``) and cipher."""

    version: str = "1.3"
    cipher: str = "aes-gcm-128"

    @property
    def overhead(self) -> int:
        """Record bytes besides the plaintext: header, explicit nonce (1.2) or content type
        (1.3), tag."""
        return 5 + (8 if self.version == "1.2" else 1) + 16

    def states(self) -> tuple[DirectionState, DirectionState]:
        """Fresh random keys at a random record number: (client->server, server->client)."""
        spec = lookup(self.cipher)

        def one() -> DirectionState:
            seq = random.randrange(1 << 32)
            if self.version == "1.3":
                return DirectionState.from_tls13_secret(spec, os.urandom(spec.hash_len), seq)
            return DirectionState.from_tls12(spec, os.urandom(spec.key_size),
                                             os.urandom(spec.tls12_fixed_iv_size), seq=seq)
        return one(), one()


def install(s: socket.socket, opt: int, st: DirectionState) -> None:
    try:
        s.setsockopt(socket.IPPROTO_TCP, uapi.TCP_ULP, b"tls")
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise
    s.setsockopt(uapi.SOL_TLS, opt, st.crypto_info().pack())


def ktls_pair(suite: Suite, port: int = PORT) -> tuple[socket.socket, socket.socket,
                                                       DirectionState, DirectionState]:
    """A connected pair with TLS_TX and TLS_RX on both ends: (c, s, c->s, s->c)."""
    c, s = connect(port)
    ab, ba = suite.states()
    install(c, uapi.TLS_TX, ab)
    install(c, uapi.TLS_RX, ba)
    install(s, uapi.TLS_TX, ba)
    install(s, uapi.TLS_RX, ab)
    return c, s, ab, ba


def one_way_pair(suite: Suite, port: int = PORT) -> tuple[socket.socket, socket.socket,
                                                          DirectionState]:
    """A connected pair for one direction: TLS_TX on the client, TLS_RX on the server."""
    c, s = connect(port)
    ab, _ = suite.states()
    install(c, uapi.TLS_TX, ab)
    install(s, uapi.TLS_RX, ab)
    return c, s, ab


READER_RCVBUF = 64 << 10
"""SO_RCVBUF of a reader that must keep up with the KeyUpdates it receives on an RX offloaded
socket: the device is re-armed after a KeyUpdate where the reader will be once it has read
what TCP already holds, so that re-arm (and its resync confirmation) only happens if the
reader gets there before the next KeyUpdate. With autotuning the unread queue outgrew one
KeyUpdate interval (8 records of 16 KiB) once the device's engine got faster: one README run
had no RX rekey done in ``rx-rekey-del``, and ``rx-rekey-hold`` saw 2 of 31 re-arms confirmed."""


def keep_reader_close(s: socket.socket) -> None:
    """Bound ``s``'s receive queue (``READER_RCVBUF``) so its reader stays near the wire."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, READER_RCVBUF)


def stream(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


def recv_exact(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        d = s.recv(min(1 << 16, n - len(buf)))
        if not d:
            break
        buf += d
    return bytes(buf)


def recv_record(s: socket.socket, size: int = 1 << 16) -> tuple[int, bytes]:
    """One read with its record type (TLS_GET_RECORD_TYPE; 23 when the kernel sends none)."""
    data, anc, _flags, _addr = s.recvmsg(size, socket.CMSG_SPACE(1))
    for level, kind, value in anc:
        if level == uapi.SOL_TLS and kind == uapi.TLS_GET_RECORD_TYPE:
            return value[0], data
    return uapi.TLS_RECORD_TYPE_DATA, data


def send_record(s: socket.socket, content_type: int, data: bytes) -> None:
    """One record of ``content_type`` (TLS_SET_RECORD_TYPE)."""
    sent = s.sendmsg([data], [(uapi.SOL_TLS, uapi.TLS_SET_RECORD_TYPE, bytes([content_type]))])
    if sent != len(data):
        raise CaseFailure(f"record of type {content_type}: sent {sent} of {len(data)} bytes")


def err_name(exc: BaseException) -> str:
    """The errno's name as the kernel spells it (Python calls 95 ENOTSUP)."""
    if isinstance(exc, OSError) and exc.errno:
        if exc.errno == errno.EOPNOTSUPP:
            return "EOPNOTSUPP"
        return errno.errorcode.get(exc.errno, str(exc.errno))
    return type(exc).__name__


class Worker(threading.Thread):
    """Runs ``fn`` and keeps its result or its exception; ``result()`` joins with a timeout."""

    def __init__(self, fn: Callable[[], object]) -> None:
        super().__init__(daemon=True)
        self.fn = fn
        self.value: object = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.value = self.fn()
        except BaseException as exc:
            self.error = exc

    def result(self, timeout: float = 4 * IO_TIMEOUT) -> object:
        self.join(timeout)
        if self.is_alive():
            raise CaseFailure(f"worker still running after {timeout:.0f}s")
        if self.error is not None:
            raise self.error
        return self.value


def send_chunks(s: socket.socket, data: bytes, chunk: int) -> int:
    """sendall() in ``chunk``-sized calls (one TLS record each); returns the number of calls."""
    calls = 0
    for off in range(0, len(data), chunk):
        s.sendall(data[off:off + chunk])
        calls += 1
    return calls


def bulk_both_ways(c: socket.socket, s: socket.socket, nbytes: int, chunk: int,
                   seed: int) -> Facts:
    """``nbytes`` each way at once; integrity by comparison and SHA-256."""
    up, down = stream(seed, nbytes), stream(seed + 1, nbytes)
    t0 = time.monotonic()
    rx_s = Worker(lambda: recv_exact(s, nbytes))
    rx_c = Worker(lambda: recv_exact(c, nbytes))
    tx_s = Worker(lambda: send_chunks(s, down, chunk))
    calls_c = send_chunks(c, up, chunk)
    calls_s = tx_s.result()
    got_s, got_c = rx_s.result(), rx_c.result()
    secs = time.monotonic() - t0
    return {"up_ok": got_s == up, "down_ok": got_c == down,
            "up_sha256": hashlib.sha256(up).hexdigest(),
            "up_received_sha256": hashlib.sha256(got_s).hexdigest(),  # type: ignore[arg-type]
            "send_calls": [calls_c, calls_s], "seconds": round(secs, 2),
            "mbit_per_s": round(2 * nbytes * 8 / secs / 1e6, 2)}


def ping_pong(c: socket.socket, s: socket.socket, count: int, size: int, seed: int,
              before_each: Callable[[int], None] | None = None) -> Facts:
    """``count`` records of ``size`` bytes c->s, each answered by a 1-byte record s->c."""
    data = stream(seed, count * size)
    got = bytearray()

    def server() -> None:
        while len(got) < len(data):
            part = recv_exact(s, size)
            if len(part) != size:
                raise CaseFailure(f"server got {len(part)} of {size} bytes")
            got.extend(part)
            s.sendall(b"A")

    srv = Worker(server)
    for i in range(count):
        if before_each:
            before_each(i)
        c.sendall(data[i * size:(i + 1) * size])
        if recv_exact(c, 1) != b"A":
            raise CaseFailure(f"no answer to record {i}")
    srv.result()
    return {"pp_ok": bytes(got) == data, "pp_records": count}


def close_all(*socks: socket.socket) -> None:
    for sk in socks:
        sk.close()
