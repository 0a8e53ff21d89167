"""The offload cases: each sets up the netdevsim pair, moves data, returns facts and counters.

A case runs with a ``Suite`` (TLS version and cipher) and a stream size, from ``ktls-a``
(client, port ``kta0``) to ``ktls-b`` (server, port ``ktb0``), and returns facts plus counter
deltas (``nsim.Counters``): the vmtests assert on them.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from .. import topology, uapi
from ..records import ContentType, RecordProtection, encode_key_update
from . import nsim
from .netns import PORT, connect, ethtool_k, run_in, tc
from .nsim import DEV_A, DEV_B, KMEMLEAK, Counters
from .traffic import (
    Facts,
    Suite,
    Worker,
    bulk_both_ways,
    close_all,
    err_name,
    install,
    ktls_pair,
    one_way_pair,
    ping_pong,
    recv_exact,
    recv_record,
    send_chunks,
    send_record,
    stream,
)
from .wire import Capture, decrypt_wire, reassemble

# A handshake message that is not a KeyUpdate (type 4, NewSessionTicket), as opaque bytes
OPAQUE_HANDSHAKE = bytes([4, 0, 0, 8]) + b"ticket!!"


def case_bulk(suite: Suite, nbytes: int) -> Facts:
    """Offload both ways on both ports: MBs each way, then 200 ping-pong records."""
    nsim.setup()
    before = Counters.read()
    c, s, _, _ = ktls_pair(suite)
    facts: Facts = {"curr_open": Counters.read(eth=False).since(before)}
    facts["bulk"] = bulk_both_ways(c, s, nbytes, 16384, 1)
    mid = Counters.read()
    facts["bulk_delta"] = mid.since(before)
    facts["pp"] = ping_pong(c, s, 200, 1000, 7)
    facts["pp_delta"] = Counters.read().since(mid)
    close_all(c, s)
    facts["delta"] = Counters.settled().since(before)
    return facts


def case_software(suite: Suite, nbytes: int) -> Facts:
    """The same traffic with the ports' TLS offload features off: the software path."""
    topology.set_offload(nsim.setup(), False)
    before = Counters.read()
    c, s, _, _ = ktls_pair(suite)
    facts: Facts = {"curr_open": Counters.read(eth=False).since(before)}
    facts["bulk"] = bulk_both_ways(c, s, nbytes, 16384, 3)
    facts["pp"] = ping_pong(c, s, 50, 1000, 8)
    close_all(c, s)
    facts["delta"] = Counters.settled().since(before)
    return facts


def _wire_run(suite: Suite, nbytes: int, chunk: int, seed: int,
              midway: Callable[[], None] | None = None) -> Facts:
    """Client TX offloaded, the stream ends with a handshake record; the server's port
    captures, the server reads with software kTLS. ``midway`` runs after the first half."""
    before = Counters.read()
    cap = Capture()
    c, s, ab = one_way_pair(suite)
    data = stream(seed, nbytes)
    rx = Worker(lambda: (recv_exact(s, nbytes), recv_record(s)))
    half = nbytes // 2 if midway else nbytes
    calls = send_chunks(c, data[:half], chunk)
    if midway:
        midway()
        calls += send_chunks(c, data[half:], chunk)
    send_record(c, ContentType.HANDSHAKE, OPAQUE_HANDSHAKE)
    c.shutdown(socket.SHUT_WR)
    got, last = rx.result()  # type: ignore[misc]
    close_all(c, s)
    capstat = cap.finish()
    isn, segs, fin = cap.segments(PORT)
    facts: Facts = {"received_ok": got == data, "send_calls": calls, **capstat,
                    "last_record": [last[0], last[1] == OPAQUE_HANDSHAKE],
                    "isn_seen": isn is not None, "fin_seen": fin}
    if isn is not None:
        wire, again, mismatch = reassemble(isn, segs)
        recs = decrypt_wire(wire, ab)
        facts.update({"wire_bytes": len(wire), "retransmitted_bytes": again,
                      "retransmit_mismatch_bytes": mismatch, "records": recs.records,
                      "decrypt_error": recs.error, "wire_plaintext_ok": recs.plaintext == data,
                      "wire_plaintext_bytes": len(recs.plaintext),
                      "wire_types": sorted(set(recs.types[:-1])) + list(recs.types[-1:])})
    facts["delta"] = Counters.read().since(before)
    return facts


def case_wire(suite: Suite, nbytes: int) -> Facts:
    """Ciphertext made by the device, captured on the peer port, opened by records.py."""
    nsim.setup()
    ethtool_k(topology.NS_B, DEV_B, tls_hw_rx_offload=False)  # see ciphertext in the tap
    return _wire_run(suite, nbytes, 16384, 11)


def case_down(suite: Suite, nbytes: int) -> Facts:
    """The sender's port goes down and up mid-stream: tls_device_down() moves the socket to
    the core's software fallback, which encrypts the rest of the stream (and retransmits)."""
    nsim.setup()
    ethtool_k(topology.NS_B, DEV_B, tls_hw_rx_offload=False)

    def bounce() -> None:
        run_in(topology.NS_A, "ip", "link", "set", DEV_A, "down")
        run_in(topology.NS_A, "ip", "link", "set", DEV_A, "up")

    return _wire_run(suite, nbytes, 16384, 15, midway=bounce)


def case_loss(suite: Suite, nbytes: int) -> Facts:
    """3% loss on the TX-offloaded sender's port: retransmits are rebuilt by the device."""
    nsim.setup()
    ethtool_k(topology.NS_B, DEV_B, tls_hw_rx_offload=False)
    tc(topology.NS_A, "qdisc", "add", "dev", DEV_A, "root", "netem", "loss", "3%")
    facts = _wire_run(suite, nbytes, 5000, 12)
    # the same loss with the receiver's RX offload on: records split by holes
    ethtool_k(topology.NS_B, DEV_B, tls_hw_rx_offload=True)
    before = Counters.read()
    c, s, _, _ = ktls_pair(suite, PORT + 1)
    facts["rx_bulk"] = bulk_both_ways(c, s, nbytes, 5000, 13)
    mid = Counters.read()
    facts["rx_delta"] = mid.since(before)
    # Bulk frames rarely hold whole records only; ping-pong ones do, loss or not.
    facts["rx_pp"] = ping_pong(c, s, 200, 1000, 14)
    close_all(c, s)
    facts["rx_pp_delta"] = Counters.settled().since(mid)
    return facts


def case_reorder(suite: Suite, nbytes: int) -> Facts:
    """Reordering and loss towards an RX-offloaded receiver (software sender, see below).

    netem with a delay orphans the skbs it holds (skb_orphan_partial() cannot keep
    the owner of a decrypted skb) and validate_xmit then drops every skb that
    still needs encryption but has no socket ("unencrypted skb with no associated
    socket"), so the reordering sender here uses software kTLS TX.
    """
    nsim.setup()
    ethtool_k(topology.NS_B, DEV_B, tls_hw_tx_offload=False)
    tc(topology.NS_B, "qdisc", "add", "dev", DEV_B, "root", "netem", "delay", "2ms",
       "reorder", "25%", "50%", "loss", "1%")
    before = Counters.read()
    c, s, _, _ = ktls_pair(suite)
    down = stream(21, nbytes)
    rx = Worker(lambda: recv_exact(c, nbytes))
    calls = send_chunks(s, down, 3000)
    facts: Facts = {"down_ok": rx.result() == down, "send_calls": calls}
    mid = Counters.read()
    facts["bulk_delta"] = mid.since(before)
    # ping-pong the other way round: the receiver (a) answers, b sends records
    facts["pp"] = ping_pong(s, c, 200, 1000, 22)
    close_all(c, s)
    facts["pp_delta"] = Counters.settled().since(mid)
    facts["delta"] = Counters.read().since(before)
    return facts


def case_records(suite: Suite, nbytes: int) -> Facts:
    """Records made in user space (padding, content types) towards the RX offload.

    The client writes records sealed by ``ktlskit.records`` on a plain TCP socket; the
    server reads them with RX offload. TLS 1.3 records carry zero padding after the inner
    content type, which the device decrypts along and the stack strips.
    """
    nsim.setup()
    c, s = connect()
    ab, _ = suite.states()
    install(s, uapi.TLS_RX, ab)
    prot = RecordProtection(ab)
    pad = 0 if suite.version == "1.2" else 200
    plan = [(23, stream(31, 1000), 0), (23, stream(32, 3000), pad),
            (ContentType.HANDSHAKE, OPAQUE_HANDSHAKE, pad), (23, stream(33, 16000), pad),
            (23, stream(34, 100), 0)]
    wire = b"".join(prot.seal(t, d, p) for t, d, p in plan)
    before = Counters.read()
    c.sendall(wire)
    # one read per record: reads of data records would otherwise merge them
    got = [recv_record(s, len(d)) for _, d, _ in plan]
    facts: Facts = {"wire_bytes": len(wire), "records": len(plan),
                    "types_ok": [t for t, _ in got] == [t for t, _, _ in plan],
                    "data_ok": [d for _, d in got] == [d for _, d, _ in plan]}
    close_all(c, s)
    facts["delta"] = Counters.settled().since(before)
    return facts


def case_fail_add(suite: Suite, nbytes: int) -> Facts:
    """fail_tx_add on a, fail_rx_add on b: those directions fall back to software."""
    nsim.setup(knobs=True)
    nsim.set_knob("a", "fail_tx_add", 1)
    nsim.set_knob("b", "fail_rx_add", 1)
    before = Counters.read()
    c, s, _, _ = ktls_pair(suite)
    facts: Facts = {"knobs_after_add": [nsim.read_knob("a", "fail_tx_add"),
                                        nsim.read_knob("b", "fail_rx_add")]}
    facts["bulk"] = bulk_both_ways(c, s, nbytes // 4, 16384, 31)
    close_all(c, s)
    facts["delta"] = Counters.settled().since(before)
    return facts


def case_refuse(suite: Suite, nbytes: int) -> Facts:
    """refuse_aes_gcm_256 on both ports: 256 goes to software, 128 is still offloaded."""
    nsim.setup(knobs=True)
    for side in ("a", "b"):
        nsim.set_knob(side, "refuse_aes_gcm_256", True)
    facts: Facts = {}
    for n, cipher in enumerate(("aes-gcm-256", "aes-gcm-128")):
        before = Counters.read()
        c, s, _, _ = ktls_pair(Suite(suite.version, cipher), PORT + n)
        facts[cipher] = bulk_both_ways(c, s, nbytes // 4, 16384, 41 + n)
        close_all(c, s)
        facts[f"{cipher}_delta"] = Counters.settled().since(before)
    return facts


def case_corrupt(suite: Suite, nbytes: int) -> Facts:
    """tx_corrupt on a: the next record a encrypts has a bad tag; b's read fails."""
    nsim.setup(knobs=True)
    before = Counters.read()
    c, s, _, _ = ktls_pair(suite)
    nsim.set_knob("a", "tx_corrupt", 1)
    c.sendall(b"x" * 1000)
    facts: Facts = {"knob_after": nsim.read_knob("a", "tx_corrupt")}
    try:
        facts["received"] = len(recv_exact(s, 1000))
        facts["error"] = None
    except OSError as exc:
        facts["error"] = err_name(exc)
    # The bad record stays queued: a second read decrypts it again and fails again.
    try:
        s.recv(10)
        facts["second_error"] = None
    except OSError as exc:
        facts["second_error"] = err_name(exc)
    close_all(c, s)
    facts["delta"] = Counters.settled().since(before)
    return facts


def case_resync(suite: Suite, nbytes: int) -> Facts:
    """rx_drop_sync on b mid-stream: the device loses the framing and resyncs."""
    nsim.setup(knobs=True)
    c, s, _, _ = ktls_pair(suite)
    facts: Facts = {"warmup": ping_pong(c, s, 20, 1000, 51)}
    before = Counters.read()
    nsim.set_knob("b", "rx_drop_sync", 1)
    facts["pp"] = ping_pong(c, s, 200, 1000, 52)
    facts["knob_after"] = nsim.read_knob("b", "rx_drop_sync")
    close_all(c, s)
    facts["delta"] = Counters.settled().since(before)
    return facts


def _try_setsockopt(sk: socket.socket, opt: int, info: bytes) -> str | None:
    try:
        sk.setsockopt(uapi.SOL_TLS, opt, info)
    except OSError as exc:
        return err_name(exc)
    return None


def case_rekey(suite: Suite, nbytes: int) -> Facts:
    """A new key for an offloaded direction (TLS 1.2: refused); a software direction rekeys.

    Port a offloads TX only, port b RX only: the client's TX and the server's RX are in the
    device, the other two directions in software. TLS 1.2 refuses any second key (EBUSY).
    """
    nsim.setup()
    ethtool_k(topology.NS_A, DEV_A, tls_hw_rx_offload=False)
    ethtool_k(topology.NS_B, DEV_B, tls_hw_tx_offload=False)
    before = Counters.read()
    c, s, _, ba = ktls_pair(suite)
    nxt_ab, _ = suite.states()
    facts: Facts = {"tx_error": _try_setsockopt(c, uapi.TLS_TX, nxt_ab.crypto_info().pack()),
                    "rx_error": _try_setsockopt(s, uapi.TLS_RX, nxt_ab.crypto_info().pack())}
    facts["pp"] = ping_pong(c, s, 20, 1000, 61)
    if suite.version == "1.3":
        # s -> c is software at both ends: KeyUpdate, new keys, and data under them
        send_record(s, ContentType.HANDSHAKE, encode_key_update(False))
        install(s, uapi.TLS_TX, ba.next())
        got = recv_record(c)
        install(c, uapi.TLS_RX, ba.next())
        facts["key_update_seen"] = got[0] == ContentType.HANDSHAKE
        facts["pp_after_sw_rekey"] = ping_pong(c, s, 20, 1000, 62)
    close_all(c, s)
    facts["delta"] = Counters.settled().since(before)
    return facts


def kmemleak_report() -> str | None:
    """Scan now (twice: young objects are not reported) and return the report, if any."""
    if not KMEMLEAK.exists():
        return None
    time.sleep(6)  # kmemleak ignores objects younger than 5 s
    for _ in range(2):
        KMEMLEAK.write_text("scan")
    return KMEMLEAK.read_text()


def case_delete(suite: Suite, nbytes: int) -> Facts:
    """Delete both netdevsim devices while offloaded sockets are open and busy."""
    nsim.setup(knobs=True)
    if KMEMLEAK.exists():
        KMEMLEAK.write_text("clear")
    c, s, _, _ = ktls_pair(suite)
    idle_c, idle_s, _, _ = ktls_pair(suite, PORT + 1)
    facts: Facts = {"warmup": ping_pong(c, s, 20, 1000, 71)}
    facts["curr_before"] = Counters.read(eth=False).current()
    big = stream(72, 64 << 20)
    errors: list[str] = []

    def pump() -> None:
        try:
            send_chunks(c, big, 16384)
        except OSError as exc:
            errors.append(f"send: {err_name(exc)}")

    def drain() -> None:
        try:
            while s.recv(1 << 16):
                pass
        except OSError as exc:
            errors.append(f"recv: {err_name(exc)}")

    workers = [Worker(pump), Worker(drain)]
    time.sleep(2)
    nsim.delete_devices()
    facts["curr_after_delete"] = Counters.read(eth=False).current()
    # The link is gone: unblock the workers by closing, then make sure they end.
    for sk in (c, s):
        sk.shutdown(socket.SHUT_RDWR)
    for w in workers:
        w.result(60)
    idle_c.sendall(b"after delete")  # goes nowhere, must not crash
    close_all(c, s, idle_c, idle_s)
    facts["worker_errors"] = errors
    facts["curr_after_close"] = Counters.read(eth=False).current()
    report = kmemleak_report()
    facts["kmemleak"] = "absent" if report is None else report
    return facts
