"""Rekey cases under faults (issue #11): each fault knob mid-rekey, the device removed
mid-rekey, sockets closed mid-rekey (patches/tls-rekey's "netdevsim: kTLS rekey fault knobs").

Streams and rekeys are those of ``rekey.py`` (16 KiB writes, a KeyUpdate every 8); the faults
are set from the rekey hooks (``Hook``) so they hit a rekey in progress. Every fault knob is
watched and read back (``Fault``): how many events the device injected. Facts as in
``rekey.py`` plus the knobs, TCP retransmissions, the port's drops and the kernel log.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from .. import topology
from ..keyschedule import DirectionState
from . import nsim
from .nsim import DEV_A, Counters
from .probes import KernelLog, blocked_tasks, delta, rx_dropped, tcp_counters
from .rekey import (
    REFUSE_ALL,
    offload_only,
    one_way,
    read_epochs,
    recv_rekeying,
    send_rekeying,
    wire_epochs,
)
from .steer import HeldReader, Hook, Once, outcome
from .traffic import (
    Facts,
    Suite,
    Worker,
    close_all,
    err_name,
    keep_reader_close,
    ktls_pair,
    one_way_pair,
    send_chunks,
    stream,
)
from .wire import Capture

CHUNK, EVERY = 16384, 8
FAULT_AT = 2  # the rekey after which a case sets its fault knob
DROP_ACKS = 32
RETRANSMITTED = 2
"""drop_acks is disarmed once the sender retransmitted this many segments: how many ACKs
are dropped before one is needed depends on the flight; each one left then answers a
retransmission timeout, and those double (12 of 32 took 20 s)."""
HOLD_RESYNC = 4
FAULT_LIMIT = 20.0  # seconds a fault knob may stay armed
GRACE = 3.0  # seconds the peers are watched after the devices are removed
HOLD_S = 1.0  # seconds the senders go on with the readers held, before the devices go
DELETE_LATE = 90.0
"""Seconds after which a device deletion is late: the blocked tasks are dumped into the facts
(alone, the two deletions take 23-27 s on the debug kernel under TCG, 1-2 s on the default)."""
DELETE_DEADLINE = 300.0  # seconds after which a deletion that has not returned counts as hung


class Fault:
    """A counting knob armed now and watched until the device has consumed it, ``enough()``
    says it did its work, or ``limit`` seconds passed; then (or when the case asks for its
    facts) it is disarmed, written 0. Facts: the count, how many the device consumed
    (``fired``), why the watch ended and after how long."""

    def __init__(self, side: str, name: str, count: int,
                 enough: Callable[[], bool] | None = None, limit: float = FAULT_LIMIT) -> None:
        self.side, self.name, self.count = side, name, count
        self.enough, self.limit = enough, limit
        self.ended: dict[str, object] = {}
        self.stop = threading.Event()
        self.t0 = time.monotonic()
        nsim.set_knob(side, name, count)
        self.watch = Worker(self._watch)

    def _end(self, why: str) -> None:
        left = int(nsim.read_knob(self.side, self.name))
        if left:
            nsim.set_knob(self.side, self.name, 0)
        self.ended = {"fired": self.count - left, "ended": why,
                      "seconds": round(time.monotonic() - self.t0, 2)}

    def _watch(self) -> None:
        while not self.stop.wait(0.05):
            why = ("consumed" if not int(nsim.read_knob(self.side, self.name))
                   else "enough" if self.enough is not None and self.enough()
                   else "limit" if time.monotonic() - self.t0 > self.limit else "")
            if why:
                self._end(why)
                return

    def facts(self) -> Facts:
        self.stop.set()
        self.watch.result(10)
        if not self.ended:
            self._end("case")
        return {"set": self.count, **self.ended}


def retransmitted(ns: str, n: int) -> Callable[[], bool]:
    """Whether namespace ``ns`` retransmitted ``n`` segments since this call."""
    base = tcp_counters(ns)["TcpRetransSegs"]
    return lambda: tcp_counters(ns)["TcpRetransSegs"] - base >= n


def fault_facts(hook: Hook) -> Facts:
    """The facts of the Fault the hook armed (``{"set": None}``: it never fired)."""
    return hook.result.facts() if isinstance(hook.result, Fault) else {"set": None}


def gauges_after_close(timeout: float = 10.0) -> dict[str, int]:
    """The TlsCurr* gauges of both namespaces that are not 0, once all are or at ``timeout``
    (the device counters may be gone with the devices)."""
    deadline = time.monotonic() + timeout
    while (curr := Counters.read(eth=False).current()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return curr


def _tx_noack(suite: Suite, nbytes: int, refuse: bool) -> Facts:
    """The TX offloaded client streams with KeyUpdates; after the second, port a drops the
    next ``DROP_ACKS`` pure ACKs, so old-key records stay unacknowledged and go out again
    (through the software fallback, under their key). Port b does not offload: its tap sees
    the ciphertext for the wire oracle."""
    nsim.setup(knobs=True)
    if refuse:
        nsim.set_knob("a", "refuse_rekey", REFUSE_ALL)
    offload_only("a")
    before, tcp0 = Counters.read(), tcp_counters(topology.NS_A)
    drops0 = rx_dropped(topology.NS_A, DEV_A)
    cap = Capture()
    c, s, ab = one_way_pair(suite)
    hook = Hook(FAULT_AT, lambda: Fault("a", "drop_acks", DROP_ACKS,
                                        retransmitted(topology.NS_A, RETRANSMITTED)))
    try:
        facts: Facts = {"stream": one_way(c, s, ab, nbytes, CHUNK, EVERY, 91, hook)}
    except OSError as exc:  # the wire oracle says which record
        facts = {"stream": {"error": err_name(exc), "tx_rekeys": hook.rekeys}}
    facts["drop_acks"] = fault_facts(hook)
    facts["curr_open"] = Counters.read(eth=False).current()
    close_all(c, s)
    facts.update(wire_epochs(cap, ab))
    facts["tcp_a"] = delta(tcp_counters(topology.NS_A), tcp0)
    facts["a_rx_dropped"] = rx_dropped(topology.NS_A, DEV_A) - drops0
    facts["delta"] = Counters.settled().since(before)
    facts["epochs_a"] = read_epochs("a")
    return facts


def case_tx_rekey_noack(suite: Suite, nbytes: int) -> Facts:
    """``tx-rekey`` (the device takes keys ahead) with the ACKs of old-key records lost."""
    return _tx_noack(suite, nbytes, refuse=False)


def case_tx_rekey_noack_del(suite: Suite, nbytes: int) -> Facts:
    """``tx-rekey-del`` (each new key waits for every old-key record to be acknowledged, then
    tls_dev_del + tls_dev_add) with those ACKs lost."""
    return _tx_noack(suite, nbytes, refuse=True)


def case_rx_rekey_hold(suite: Suite, nbytes: int) -> Facts:
    """``rx-rekey-del`` (tls_dev_del at each KeyUpdate, tls_dev_add at the window's edge,
    confirmed by a resync) with the device turning down the next ``HOLD_RESYNC`` resync
    confirmations after the second KeyUpdate: the re-arm is held, in software, while more
    KeyUpdates arrive. The reader keeps up (``keep_reader_close``)."""
    nsim.setup(knobs=True)
    nsim.set_knob("b", "refuse_rekey", REFUSE_ALL)
    offload_only("b")
    before = Counters.read()
    c, s, ab = one_way_pair(suite)
    keep_reader_close(s)
    hook = Hook(FAULT_AT, lambda: Fault("b", "hold_resync", HOLD_RESYNC, limit=1e9))
    facts: Facts = {"stream": one_way(c, s, ab, nbytes, CHUNK, EVERY, 92, hook)}
    facts["hold_resync"] = fault_facts(hook)
    facts["curr_open"] = Counters.read(eth=False).current()
    close_all(c, s)
    facts["delta"] = Counters.settled().since(before)
    facts["epochs_b"] = read_epochs("b")
    return facts


def _peers(c: socket.socket, s: socket.socket, ab: DirectionState, ba: DirectionState,
           nbytes: int, hooks: dict[str, Hook], readers: dict[str, Any]) -> dict[str, Worker]:
    """Both ways at once, every loop in a worker: up (c->s, seed 93) and down (s->c, 94)."""
    up, down = stream(93, nbytes), stream(94, nbytes)
    return {"up_tx": Worker(lambda: send_rekeying(c, ab, up, CHUNK, EVERY, hooks["up_tx"])),
            "up_rx": Worker(lambda: recv_rekeying(readers["up_rx"], ab, nbytes,
                                                  hooks["up_rx"])[0] == up),
            "down_tx": Worker(lambda: send_rekeying(s, ba, down, CHUNK, EVERY,
                                                    hooks["down_tx"])),
            "down_rx": Worker(lambda: recv_rekeying(readers["down_rx"], ba, nbytes,
                                                    hooks["down_rx"])[0] == down)}


def _dev_del(suite: Suite, nbytes: int, hold: bool) -> Facts:
    """Both ports offload both ways, both peers stream with KeyUpdates (port a refuses keys
    ahead: the client's TX rekeys wait for ACKs, port b holds keys ahead); both netdevsim
    devices are deleted once both peers sent ``FAULT_AT`` KeyUpdates: right after the later
    one's, or (``hold``) with each reader held before its ``FAULT_AT``-th KeyUpdate and
    ``HOLD_S`` seconds more of records behind it, then let go. The peers are watched for
    ``GRACE`` seconds, shut down (the link is gone) and must end; then closed. Loop results:
    True/False (stream intact or not), the errno, or "running"."""
    log = KernelLog()
    nsim.setup(knobs=True)
    nsim.set_knob("a", "refuse_rekey", REFUSE_ALL)
    before = Counters.read(eth=False)
    c, s, ab, ba = ktls_pair(suite)
    sent, deleted, go = threading.Event(), threading.Event(), threading.Event()
    facts: Facts = {}
    started: list[float] = []

    def delete() -> None:
        facts["curr_at_delete"] = Counters.read(eth=False).current()
        started.append(time.monotonic())
        nsim.delete_devices()
        facts["delete_s"] = round(time.monotonic() - started[0], 1)
        deleted.set()

    both = Once(2, sent.set if hold else delete)
    hooks = {"up_tx": Hook(FAULT_AT, both), "down_tx": Hook(FAULT_AT, both),
             "up_rx": Hook(), "down_rx": Hook()}
    limit = FAULT_AT * EVERY * CHUNK if hold else nbytes
    readers = {"up_rx": HeldReader(s, limit, go), "down_rx": HeldReader(c, limit, go)}
    peers = _peers(c, s, ab, ba, nbytes, hooks, readers)
    if hold:
        facts["held"] = all(e.wait(4 * 60) for e in (sent, *(r.held for r in readers.values())))
        time.sleep(HOLD_S)
        delete()
        go.set()
    while not deleted.wait(1):
        if started:  # a sender's hook is deleting the devices
            _wait_deletion(deleted, started[0], facts)
            break
        # until both streams ended: on the debug kernel one sender (port b, keys ahead) can
        # finish its 1 MiB before the other sent its FAULT_AT-th KeyUpdate, and the deletion
        # come later (1 of 8 runs, which this loop had reported as a deletion not finished)
        if not (peers["up_tx"].is_alive() or peers["down_tx"].is_alive()):
            break
    facts["deleted"] = deleted.is_set()
    time.sleep(GRACE)
    facts["after_grace"] = {k: outcome(w, 0) for k, w in peers.items()}
    for sk in (c, s):
        sk.shutdown(socket.SHUT_RDWR)
    facts["after_shutdown"] = {k: outcome(w, 60) for k, w in peers.items()}
    facts["rekeys"] = {k: h.rekeys for k, h in hooks.items()}
    close_all(c, s)
    facts["curr_after_close"] = gauges_after_close()
    facts["delta"] = Counters.read(eth=False).since(before)
    facts.update(log.facts())
    return facts


def _wait_deletion(deleted: threading.Event, start: float, facts: Facts) -> None:
    """Wait for a deletion started at ``start`` until ``DELETE_DEADLINE``; once it is
    ``DELETE_LATE``, dump the blocked tasks into ``facts["blocked_tasks"]``."""
    if not deleted.wait(max(0.0, start + DELETE_LATE - time.monotonic())):
        facts["blocked_tasks"] = blocked_tasks()
        deleted.wait(max(0.0, start + DELETE_DEADLINE - time.monotonic()))


def case_rekey_dev_del(suite: Suite, nbytes: int) -> Facts:
    """The devices deleted right after a KeyUpdate (TX rekeys in progress)."""
    return _dev_del(suite, nbytes, hold=False)


def case_rekey_dev_del_rx(suite: Suite, nbytes: int) -> Facts:
    """The devices deleted with a KeyUpdate unread on each side and records after it, which
    the devices decrypted with the key before it, queued behind it."""
    return _dev_del(suite, nbytes, hold=True)


def _close_tx(suite: Suite, nbytes: int) -> Facts:
    """The TX offloaded client (refuse_rekey, drop_acks) sends, then a KeyUpdate, a new key,
    one more record, and closes at once: the new key still waits for old-key ACKs."""
    nsim.setup(knobs=True)
    nsim.set_knob("a", "refuse_rekey", REFUSE_ALL)
    offload_only("a")
    before = Counters.read()
    c, s, ab = one_way_pair(suite)
    data = stream(95, nbytes)
    head = len(data) - 2 * CHUNK
    rx = Worker(lambda: recv_rekeying(s, ab, len(data)))
    send_chunks(c, data[:head], CHUNK)
    fault = Fault("a", "drop_acks", DROP_ACKS, retransmitted(topology.NS_A, RETRANSMITTED))
    facts: Facts = {"tx_rekeys": send_rekeying(c, ab, data[head:], CHUNK, 1)}
    facts["curr_at_close"] = Counters.read(eth=False).current()
    c.close()
    got, facts["rx_rekeys"] = rx.result()  # type: ignore[misc]
    facts.update(ok=got == data, received=len(got), drop_acks=fault.facts())
    s.close()
    facts["curr_after_close"] = gauges_after_close()
    facts["delta"] = Counters.settled().since(before)
    return facts


def _close_rx(suite: Suite, nbytes: int) -> Facts:
    """The RX offloaded server (refuse_rekey, hold_resync) reads past a KeyUpdate, which
    leaves the re-arm pending (until the reader is past the window's edge and the device has
    resynced), and closes with the rest unread."""
    nsim.setup(knobs=True)
    nsim.set_knob("b", "refuse_rekey", REFUSE_ALL)
    offload_only("b")
    before = Counters.read()
    c, s, ab = one_way_pair(suite)
    fault = Fault("b", "hold_resync", HOLD_RESYNC, limit=1e9)
    data = stream(96, nbytes)
    half = len(data) // 2 // CHUNK
    tx = Worker(lambda: send_rekeying(c, ab, data, CHUNK, half))
    got, rx_rekeys = recv_rekeying(s, ab, half * CHUNK + 1)
    facts: Facts = {"rx_rekeys": rx_rekeys, "ok": got == data[:len(got)], "read": len(got)}
    facts["curr_at_close"] = Counters.read(eth=False).current()
    s.close()
    facts["tx_result"] = outcome(tx, 60)
    c.close()
    facts["hold_resync"] = fault.facts()
    facts["curr_after_close"] = gauges_after_close()
    facts["delta"] = Counters.settled().since(before)
    return facts


def case_rekey_close(suite: Suite, nbytes: int) -> Facts:
    """Sockets closed mid-rekey: the sender with its new key waiting for ACKs (``tx``), the
    receiver with its re-arm pending (``rx``); the streams are ``nbytes`` / 8."""
    log = KernelLog()
    facts: Facts = {"tx": _close_tx(suite, max(nbytes // 8, 4 * CHUNK))}
    facts["rx"] = _close_rx(suite, max(nbytes // 8, 4 * CHUNK))
    facts.update(log.facts())
    return facts


REKEY_FAULT_CASES = {"tx-rekey-noack": case_tx_rekey_noack,
                     "tx-rekey-noack-del": case_tx_rekey_noack_del,
                     "rx-rekey-hold": case_rx_rekey_hold, "rekey-dev-del": case_rekey_dev_del,
                     "rekey-dev-del-rx": case_rekey_dev_del_rx, "rekey-close": case_rekey_close}
