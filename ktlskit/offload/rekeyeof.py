"""A reproducer of an open bug of patches/tls-rekey: EOF one record early after RX rekeys.

Found by ``bench offload --deladd`` (about 1 transfer in 24 of 16 MiB): with RX offload on
port b, netdevsim refusing to switch keys itself (``refuse_rekey``: the stack removes the
device's key at each KeyUpdate and re-adds it past what the device may have seen), and a
sender that closes right after its last record, the receiver reads EOF before that record,
which is still in the TCP receive queue (``FIONREAD`` 12694 bytes at EOF). The record is
not lost on the wire: TCP delivered it and the FIN behind it.

``rekey-eof`` runs such transfers of 16 MiB each (as in the benchmark), one per MiB of the
case's ``nbytes``, and reports every short stream with what the socket still held. It is not
in ``vmtests/``: it fails about once in 24 transfers, so a test of it would fail by chance;
run it by hand, e.g. ``ktlskit exec -- python3 -m ktlskit.offload rekey-eof --bytes
33554432`` (32 transfers).
"""

from __future__ import annotations

import fcntl
import socket
import struct
import termios

from ..keyschedule import DirectionState
from . import nsim
from .nsim import Counters
from .rekey import REFUSE_ALL, offload_only, recv_rekeying, send_rekeying
from .traffic import Facts, Suite, Worker, close_all, one_way_pair, stream

TRANSFER = 16 << 20
CHUNK, EVERY = 16384, 32  # as bench offload: a KeyUpdate every 32 full records


def _unread(s: socket.socket) -> int:
    """Bytes in the TCP receive queue (FIONREAD)."""
    return int(struct.unpack("i", fcntl.ioctl(s.fileno(), termios.FIONREAD, b"\0" * 4))[0])


def _send_and_close(c: socket.socket, st: DirectionState, data: bytes) -> int:
    rekeys = send_rekeying(c, st, data, CHUNK, EVERY)
    c.shutdown(socket.SHUT_WR)
    c.close()
    return rekeys


def _transfer(suite: Suite, data: bytes) -> Facts | None:
    """One stream; None if it arrived whole, else what the receiver saw at EOF."""
    c, s, ab = one_way_pair(suite)
    sender = Worker(lambda: _send_and_close(c, ab, data))
    try:
        got, rekeys = recv_rekeying(s, ab, len(data))
        short = None
        if got != data:
            short = {"received": len(got), "sent": len(data), "rx_rekeys": rekeys,
                     "prefix_intact": data.startswith(got), "unread_at_eof": _unread(s)}
        sender.result()
        return short
    finally:
        close_all(s)


def case_rekey_eof(suite: Suite, nbytes: int) -> Facts:
    """Transfers to an RX offloaded receiver whose device refuses key switches, each closed
    by the sender right after its last record: the streams that ended early."""
    nsim.setup(knobs=True)
    offload_only("b")
    nsim.set_knob("b", "refuse_rekey", REFUSE_ALL)
    data = stream(88, TRANSFER)
    before = Counters.read()
    runs = max(1, nbytes >> 20)
    shorts = [f for f in (_transfer(suite, data) for _ in range(runs)) if f]
    return {"transfers": runs, "short": shorts, "delta": Counters.settled().since(before)}


REKEY_EOF_CASES = {"rekey-eof": case_rekey_eof}
