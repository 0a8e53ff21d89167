"""Rekey cases: TLS 1.3 KeyUpdates on offloaded sockets (patches/tls-rekey).

The client (port ``kta0``) streams to the server (``ktb0``) and sends a KeyUpdate every
``every`` chunks, installing its next TX key right after it; the server installs its next RX
key whenever it reads the KeyUpdate. Facts: the stream intact, the rekeys each end did, the
counter deltas and the device's per-key record (the ports' debugfs ``tls/epochs``).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass

from .. import topology, uapi
from ..keyschedule import DirectionState
from ..records import ContentType, encode_key_update
from . import nsim
from .netns import PORT, CaseFailure, ethtool_k, tc
from .nsim import DEV_A, DEV_B, Counters
from .rekeywire import follow_epochs
from .traffic import (
    Facts,
    Suite,
    Worker,
    close_all,
    err_name,
    install,
    keep_reader_close,
    ktls_pair,
    one_way_pair,
    recv_record,
    send_record,
    stream,
)
from .wire import Capture, reassemble


@dataclass(frozen=True)
class Epoch:
    """One key the device had: direction, TCP sequence number it started at, bytes, and the
    ``ktime_get_ns()`` (CLOCK_MONOTONIC) of the first and last of those bytes (0: none)."""

    index: int
    direction: str
    start_seq: int
    nbytes: int
    first_ns: int = 0
    last_ns: int = 0


def parse_epochs(text: str) -> list[Epoch]:
    """The port's ``tls/epochs`` file: ``INDEX tx|rx START_SEQ BYTES FIRST_NS LAST_NS`` per
    line (the two times are absent before patches/tls-rekey's "time the kTLS key epochs")."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if (len(parts) not in (4, 6) or parts[1] not in ("tx", "rx")
                or not all(p.isdigit() for p in parts[:1] + parts[2:])):
            raise CaseFailure(f"unexpected line in tls/epochs: {line!r}")
        index, direction, *numbers = parts
        out.append(Epoch(int(index), direction, *(int(n) for n in numbers)))
    return out


def read_epochs(side: str) -> list[dict[str, int | str]]:
    path = nsim.knob_dir(side) / "epochs"
    return [vars(e) for e in parse_epochs(path.read_text())]


OnRekey = Callable[[int], None]
"""Called right after each new key is installed, with the number of rekeys so far."""


def send_rekeying(s: socket.socket, st: DirectionState, data: bytes, chunk: int,
                  every: int, on_rekey: OnRekey | None = None) -> int:
    """Send ``data`` in ``chunk``-byte writes, a KeyUpdate and a new TX key after every
    ``every`` writes; returns the number of rekeys."""
    rekeys = 0
    for i, off in enumerate(range(0, len(data), chunk)):
        s.sendall(data[off:off + chunk])
        if every and (i + 1) % every == 0 and off + chunk < len(data):
            send_record(s, ContentType.HANDSHAKE, encode_key_update(False))
            st = st.next()
            install(s, uapi.TLS_TX, st)
            rekeys += 1
            if on_rekey:
                on_rekey(rekeys)
    return rekeys


def recv_rekeying(s: socket.socket, st: DirectionState, nbytes: int,
                  on_rekey: OnRekey | None = None) -> tuple[bytes, int]:
    """Read ``nbytes`` of data, installing the next RX key at each KeyUpdate."""
    buf = bytearray()
    rekeys = 0
    while len(buf) < nbytes:
        kind, data = recv_record(s)
        if kind == ContentType.HANDSHAKE:
            st = st.next()
            install(s, uapi.TLS_RX, st)
            rekeys += 1
            if on_rekey:
                on_rekey(rekeys)
        elif not data:
            break
        else:
            buf += data
    return bytes(buf), rekeys


def one_way(c: socket.socket, s: socket.socket, ab: DirectionState, nbytes: int,
            chunk: int, every: int, seed: int, on_rekey: OnRekey | None = None) -> Facts:
    """``on_rekey``: the sender's."""
    data = stream(seed, nbytes)
    sender = Worker(lambda: send_rekeying(c, ab, data, chunk, every, on_rekey))
    got, rx_rekeys = recv_rekeying(s, ab, nbytes)
    tx_rekeys = sender.result()
    return {"ok": got == data, "received": len(got), "tx_rekeys": tx_rekeys,
            "rx_rekeys": rx_rekeys}


REFUSE_ALL = 1 << 20  # refuse_rekey: more key switches than any case does


def offload_only(side: str) -> None:
    """Only port ``side`` offloads, the direction a client-to-server stream takes through it
    (a: TX, b: RX); the other port's TLS offload is off (its tap sees ciphertext)."""
    if side == "a":
        ethtool_k(topology.NS_B, DEV_B, tls_hw_tx_offload=False, tls_hw_rx_offload=False)
        ethtool_k(topology.NS_A, DEV_A, tls_hw_rx_offload=False)
    else:
        ethtool_k(topology.NS_A, DEV_A, tls_hw_tx_offload=False, tls_hw_rx_offload=False)
        ethtool_k(topology.NS_B, DEV_B, tls_hw_tx_offload=False)


def _offloaded_one_way(suite: Suite, nbytes: int, side: str, seed: int,
                       refuse: bool, close_reader: bool = False,
                       netem_a: tuple[str, ...] = ()) -> Facts:
    """The client streams to the server with KeyUpdates; only port ``side`` offloads, the
    direction the stream takes through it (a: TX, b: RX). ``refuse``: the port refuses to
    take keys itself (``refuse_rekey``). ``close_reader``: the server's reader keeps up
    (``keep_reader_close``); otherwise its buffer is autotuned. ``netem_a``: a netem qdisc
    with these arguments on the client's port."""
    nsim.setup(knobs=True)
    if refuse:
        nsim.set_knob(side, "refuse_rekey", REFUSE_ALL)
    offload_only(side)
    if netem_a:
        tc(topology.NS_A, "qdisc", "add", "dev", DEV_A, "root", "netem", *netem_a)
    before = Counters.read()
    c, s, ab, _ = ktls_pair(suite)
    if close_reader:
        keep_reader_close(s)
    facts: Facts = {"stream": one_way(c, s, ab, nbytes, 16384, 8, seed)}
    facts["curr_open"] = Counters.read(eth=False).current()
    close_all(c, s)
    facts["delta"] = Counters.settled().since(before)
    facts[f"epochs_{side}"] = read_epochs(side)
    return facts


def case_tx_rekey(suite: Suite, nbytes: int) -> Facts:
    """KeyUpdates on a TX offloaded socket; the receiving side rekeys in software.

    Port a offloads TX, port b nothing (its RX is the software path that rekeys today).
    """
    return _offloaded_one_way(suite, nbytes, "a", 81, refuse=False)


def case_rx_rekey(suite: Suite, nbytes: int) -> Facts:
    """KeyUpdates towards an RX offloaded socket; the sender rekeys in software.

    Port b offloads RX, port a nothing. The reader keeps up (``keep_reader_close``): the
    device takes each new key where it is when the reader installs it, so an unread queue
    deeper than one KeyUpdate interval leaves that key nothing to decrypt. With autotuning,
    CI on 6c81550 saw 9 of 32 keys decrypt something where local runs saw 32 of 32;
    ``both-rekey`` keeps the deep, autotuned queue.
    """
    return _offloaded_one_way(suite, nbytes, "b", 82, refuse=False, close_reader=True)


def case_rx_rekey_reorder(suite: Suite, nbytes: int) -> Facts:
    """``rx-rekey`` through reordering and loss: netem on the client's port delays 2 ms,
    sends 25% of the frames at once (ahead of the delayed ones) and drops 1%. The sender
    is software kTLS: a delaying netem drops TX offloaded skbs (``stress-rekey``)."""
    return _offloaded_one_way(suite, nbytes, "b", 88, refuse=False, close_reader=True,
                              netem_a=("delay", "2ms", "reorder", "25%", "50%",
                                       "loss", "1%"))


def case_tx_rekey_del(suite: Suite, nbytes: int) -> Facts:
    """``tx-rekey`` on a device that refuses to take keys ahead (``refuse_rekey``): each new
    key waits for the old one's records to be acknowledged, then tls_dev_del + tls_dev_add."""
    return _offloaded_one_way(suite, nbytes, "a", 81, refuse=True)


def case_rx_rekey_del(suite: Suite, nbytes: int) -> Facts:
    """``rx-rekey`` on a device that refuses to switch keys itself: tls_dev_del, and
    tls_dev_add at the window's edge, where the device resyncs (the reader keeps up:
    ``keep_reader_close``)."""
    return _offloaded_one_way(suite, nbytes, "b", 82, refuse=True, close_reader=True)


def case_both_rekey(suite: Suite, nbytes: int) -> Facts:
    """Both ports offload both directions; both peers stream and rekey at the same time."""
    nsim.setup(knobs=True)
    before = Counters.read()
    c, s, ab, ba = ktls_pair(suite)
    down = Worker(lambda: one_way(s, c, ba, nbytes, 16384, 8, 84))
    facts: Facts = {"up": one_way(c, s, ab, nbytes, 16384, 8, 83)}
    facts["down"] = down.result()
    facts["curr_open"] = Counters.read(eth=False).current()
    close_all(c, s)
    facts["delta"] = Counters.settled().since(before)
    facts["epochs_a"] = read_epochs("a")
    facts["epochs_b"] = read_epochs("b")
    return facts


STRESS_CHUNK, STRESS_EVERY = 1024, 2  # a KeyUpdate every 2 KiB


def case_stress_rekey(suite: Suite, nbytes: int) -> Facts:
    """Both ways at once on fully offloaded ports, a KeyUpdate every 2 KiB (``nbytes`` of 2 MiB
    is 1,023 rekeys each way), through 1% loss (netem) on both ports.

    No reordering: netem reorders only with a delay, and a delaying netem orphans the skbs it
    holds; can_skb_orphan_partial() refuses skbs marked decrypted, so they lose their socket
    and validate_xmit_skb() drops every offloaded segment ("unencrypted skb with no associated
    socket - dropping", Linux 7.3.4, with or without rekeys)."""
    nsim.setup(knobs=True)
    for ns, dev in ((topology.NS_A, DEV_A), (topology.NS_B, DEV_B)):
        tc(ns, "qdisc", "add", "dev", dev, "root", "netem", "loss", "1%")
    before = Counters.read()
    c, s, ab, ba = ktls_pair(suite)
    down = Worker(lambda: one_way(s, c, ba, nbytes, STRESS_CHUNK, STRESS_EVERY, 87))
    facts: Facts = {"up": one_way(c, s, ab, nbytes, STRESS_CHUNK, STRESS_EVERY, 86)}
    facts["down"] = down.result()
    facts["curr_open"] = Counters.read(eth=False).current()
    close_all(c, s)
    facts["delta"] = Counters.settled().since(before)
    return facts


def case_open_record(suite: Suite, nbytes: int) -> Facts:
    """An open record (MSG_MORE) on a TX offloaded socket whose RX was installed after TX.

    A TX rekey with the record open is refused (EBUSY: a record is never under two keys);
    a record of another type (TLS_SET_RECORD_TYPE) then closes it through the device's
    handler, which setting up RX used to replace with the software one (tls-rekey patch 1).
    """
    nsim.setup()
    before = Counters.read()
    c, s, ab, _ = ktls_pair(suite)  # TX, then RX, on each end
    c.send(b"x" * 1000, socket.MSG_MORE)
    facts: Facts = {"rekey_open": None}
    if suite.version == "1.3":
        try:
            install(c, uapi.TLS_TX, ab.next())
        except OSError as exc:
            facts["rekey_open"] = err_name(exc)
    send_record(c, ContentType.HANDSHAKE, b"\x04\x00\x00\x04tick")
    kinds = [recv_record(s) for _ in range(2)]
    facts["records"] = [(k, len(d)) for k, d in kinds]
    close_all(c, s)
    facts["delta"] = Counters.settled().since(before)
    return facts


def wire_epochs(cap: Capture, ab: DirectionState) -> Facts:
    """The oracle on what ``cap`` saw of the client's stream (the sockets closed): frames,
    retransmitted bytes and those differing from the first transmission, and the key of each
    record (``follow_epochs``)."""
    facts: Facts = dict(cap.finish())
    isn, segs, _fin = cap.segments(PORT)
    if isn is not None:
        wire, again, mismatch = reassemble(isn, segs)
        rep = follow_epochs(wire, ab)
        facts.update({"retransmitted_bytes": again, "retransmit_mismatch_bytes": mismatch,
                      "wire_key_updates": rep.key_updates, "wire_error": rep.error,
                      "wire_records": len(rep.epochs),
                      "wire_plaintext_bytes": len(rep.plaintext)})
    return facts


def case_wire_rekey(suite: Suite, nbytes: int) -> Facts:
    """The wire under TX rekeys with 3% loss on the offloaded sender: every captured record
    under exactly one key, the key changing only after each KeyUpdate, retransmissions
    identical to the first transmission (so under the key of their record)."""
    nsim.setup()
    ethtool_k(topology.NS_B, DEV_B, tls_hw_rx_offload=False)  # ciphertext in the tap
    tc(topology.NS_A, "qdisc", "add", "dev", DEV_A, "root", "netem", "loss", "3%")
    before = Counters.read()
    cap = Capture()
    c, s, ab = one_way_pair(suite)
    facts: Facts = {"stream": one_way(c, s, ab, nbytes, 16384, 8, 85)}
    close_all(c, s)
    facts.update(wire_epochs(cap, ab))
    facts["delta"] = Counters.settled().since(before)
    return facts


REKEY_CASES = {"wire-rekey": case_wire_rekey, "tx-rekey": case_tx_rekey, "rx-rekey": case_rx_rekey,
               "rx-rekey-reorder": case_rx_rekey_reorder,
               "tx-rekey-del": case_tx_rekey_del, "rx-rekey-del": case_rx_rekey_del,
               "both-rekey": case_both_rekey, "open-record": case_open_record,
               "stress-rekey": case_stress_rekey}
