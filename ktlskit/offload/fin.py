"""Ending a stream while the last record is only partly in TCP: a non-blocking sender that
closes, or shuts down for writing, right after EAGAIN must still deliver what send() took."""

from __future__ import annotations

import fcntl
import socket
import struct
import termios
import time

from .. import topology
from . import nsim
from .netns import PORT
from .nsim import Counters
from .traffic import Facts, Suite, Worker, close_all, one_way_pair, recv_exact, stream


def _fin_nonblock(suite: Suite, port: int, shutdown: bool) -> Facts:
    c, s, _ = one_way_pair(suite, port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32768)
    data = stream(81, 256 * 16384)
    rx = Worker(lambda: (time.sleep(1.0), recv_exact(s, len(data)))[1])
    c.setblocking(False)
    sent, wire, full = 0, 0, False
    while sent < len(data) and not full:
        try:
            n = c.send(data[sent:sent + 16384])
        except BlockingIOError:
            full = True
        else:
            sent, wire = sent + n, wire + n + suite.overhead  # each send() ends a record
    # The reader has read nothing yet: TCP holds what is unacked, or queued at the reader
    # (counted twice while its ACK is on the way); kTLS holds at least the rest, the state
    # the FIN must not cut off.
    held = max(0, wire - _queued(c, termios.TIOCOUTQ) - _queued(s, termios.FIONREAD))
    t0 = time.monotonic()
    if shutdown:
        c.shutdown(socket.SHUT_WR)
    c.close()
    closed = time.monotonic() - t0
    got = rx.result()
    close_all(s)
    assert isinstance(got, bytes)
    return {"accepted": sent, "eagain": full, "received": len(got),
            "received_ok": got == data[:sent], "fin_seconds": round(closed, 2),
            "held_at_fin": held}


def _queued(sock: socket.socket, request: int) -> int:
    """SIOCOUTQ (TIOCOUTQ) or SIOCINQ (FIONREAD) of a TCP socket, in bytes."""
    return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), request, b"\0" * 4))[0])


def case_fin_nonblock(suite: Suite, nbytes: int) -> Facts:
    """A non-blocking TX-offloaded sender sends full records until EAGAIN, then closes, or
    shuts down for writing and closes, at once, while the reader waits a second with a small
    receive buffer: the last record is then only partly in TCP, and what send() took must
    all arrive before the FIN."""
    return _fin_case(suite, offload=True)


def case_fin_nonblock_sw(suite: Suite, nbytes: int) -> Facts:
    """The same with the ports' TLS offload off: software kTLS keeps the records TCP did not
    take in its own list (``tx_list``), and what send() took must still all arrive."""
    return _fin_case(suite, offload=False)


def _fin_case(suite: Suite, offload: bool) -> Facts:
    topo = nsim.setup()
    if not offload:
        topology.set_offload(topo, False)
    before = Counters.read()
    facts: Facts = {how: _fin_nonblock(suite, PORT + n, how == "shutdown")
                    for n, how in enumerate(("close", "shutdown"))}
    facts["delta"] = Counters.settled().since(before)
    return facts
