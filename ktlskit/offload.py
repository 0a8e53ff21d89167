"""Guest-side cases for kTLS device offload on two linked netdevsim ports.

Each case sets up the ``netdevsim`` topology (``ktlskit.topology``), opens a
TCP connection from namespace ``ktls-a`` to ``ktls-b`` in this one process
(sockets are created inside each namespace and keep it), installs TLS 1.2
keys with raw ``setsockopt(SOL_TLS)``, moves data, and returns facts plus
counter deltas: ``/proc/net/tls_stat`` per namespace (``a``/``b``) and the
ports' ``ethtool -S`` (``a_eth``/``b_eth``). The vmtests
(``vmtests/test_offload.py``) assert on them. Run as
``python -m ktlskit.offload CASE[:CIPHER]...``; the last line of output is
``{case: facts}`` as JSON.

Only ``keyschedule``/``records``/``uapi`` are used for keys and records: the
checks do not depend on the kTLS socket library they are meant to check.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import topology, uapi
from .keyschedule import DirectionState
from .records import RecordParser, RecordProtection
from .tlsstats import ethtool_stats, tls_stat_in

Facts = dict[str, object]
DEV_A, DEV_B = "kta0", "ktb0"
PORT = 4500
IO_TIMEOUT = 120.0  # seconds any single socket operation may block
TLS12_GCM_OVERHEAD = 5 + 8 + 16  # header, explicit nonce, tag
DEBUGFS = Path("/sys/kernel/debug")
KMEMLEAK = DEBUGFS / "kmemleak"
ETH_P_ALL = 0x0003
PACKET_STATISTICS = 6
SOL_PACKET = 263


class CaseFailure(Exception):
    """The case could not run to its end; the message says where."""


# ---- topology, knobs, counters ---------------------------------------------

def ethtool_k(ns: str, dev: str, **features: bool) -> None:
    """``ethtool -K`` in a namespace, e.g. ``tls_hw_rx_offload=False``."""
    argv = ["ip", "netns", "exec", ns, "ethtool", "-K", dev]
    for name, on in features.items():
        argv += [name.replace("_", "-"), "on" if on else "off"]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if res.returncode:
        raise CaseFailure(f"{' '.join(argv)}: {(res.stderr or res.stdout).strip()}")


def tc(ns: str, *args: str) -> None:
    argv = ["ip", "netns", "exec", ns, "tc", *args]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if res.returncode:
        raise CaseFailure(f"{' '.join(argv)}: {(res.stderr or res.stdout).strip()}")


def mount_debugfs() -> None:
    if not (DEBUGFS / "netdevsim").is_dir():
        subprocess.run(["mount", "-t", "debugfs", "none", str(DEBUGFS)], capture_output=True,
                       timeout=30, check=False)


def setup_with_knobs() -> None:
    """The offloaded netdevsim pair, with debugfs mounted for the fault knobs."""
    topology.setup("netdevsim", offload=True)
    mount_debugfs()


def knob_dir(side: str) -> Path:
    dev_id = topology.NSIM_IDS[0 if side == "a" else 1]
    return DEBUGFS / "netdevsim" / f"netdevsim{dev_id}" / "ports" / "0" / "tls"


def set_knob(side: str, name: str, value: bool) -> None:
    (knob_dir(side) / name).write_text("Y" if value else "N")


def read_knob(side: str, name: str) -> str:
    return (knob_dir(side) / name).read_text().strip()


@dataclass
class Counters:
    a: dict[str, int] = field(default_factory=dict)
    b: dict[str, int] = field(default_factory=dict)
    a_eth: dict[str, int] = field(default_factory=dict)
    b_eth: dict[str, int] = field(default_factory=dict)

    @classmethod
    def read(cls, eth: bool = True) -> Counters:
        c = cls(tls_stat_in(topology.NS_A), tls_stat_in(topology.NS_B))
        if eth:
            c.a_eth = ethtool_stats(DEV_A, topology.NS_A)
            c.b_eth = ethtool_stats(DEV_B, topology.NS_B)
        return c

    @classmethod
    def settled(cls, timeout: float = 10.0) -> Counters:
        """The counters once every device context has been deleted, read after closing the
        sockets. A TX context is released by a work item once its last record is acked
        (``tls_device_queue_ctx_destruction()``), so ``tx_tls_del`` can lag the close; a
        context still live at the deadline is returned as it is, for the test to see."""
        deadline = time.monotonic() + timeout
        while True:
            c = cls.read()
            live = [k for e in (c.a_eth, c.b_eth) for k in ("tx", "rx")
                    if e.get(f"{k}_tls_ctx", 0) != e.get(f"{k}_tls_del", 0)]
            if not live or time.monotonic() > deadline:
                return c
            time.sleep(0.05)

    def since(self, before: Counters) -> dict[str, dict[str, int]]:
        """Every counter's change (zeros included, so a test can tell 0 from absent)."""
        out = {}
        for name in ("a", "b", "a_eth", "b_eth"):
            now, then = getattr(self, name), getattr(before, name)
            out[name] = {k: v - then.get(k, 0) for k, v in now.items()}
        return out


# ---- connections -------------------------------------------------------------

@contextmanager
def in_netns(ns: str) -> Iterator[None]:
    from pyroute2 import netns as pr_netns

    pr_netns.pushns(ns)
    try:
        yield
    finally:
        pr_netns.popns()


def _timeouts(s: socket.socket) -> None:
    """Kernel-side timeouts: the socket stays blocking (one sendmsg per send call)."""
    tv = struct.pack("@ll", int(IO_TIMEOUT), 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)


def connect(port: int = PORT) -> tuple[socket.socket, socket.socket]:
    """(client in ktls-a, server in ktls-b), both connected over the netdevsim link."""
    with in_netns(topology.NS_B):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with in_netns(topology.NS_A):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((topology.V4[1], port))
        ls.listen(1)
        ls.settimeout(IO_TIMEOUT)
        c.settimeout(IO_TIMEOUT)
        c.connect((topology.V4[1], port))
        s, _ = ls.accept()
    finally:
        ls.close()
    for sk in (c, s):
        sk.settimeout(None)
        _timeouts(sk)
        sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return c, s


def states(cipher: str) -> tuple[DirectionState, DirectionState]:
    """Fresh random TLS 1.2 keys: (client->server, server->client)."""
    from .ciphers import lookup

    spec = lookup(cipher)
    return tuple(  # type: ignore[return-value]
        DirectionState.from_tls12(spec, os.urandom(spec.key_size),
                                  os.urandom(spec.tls12_fixed_iv_size),
                                  seq=random.randrange(1 << 32))
        for _ in range(2))


def install(s: socket.socket, opt: int, st: DirectionState) -> None:
    try:
        s.setsockopt(socket.IPPROTO_TCP, uapi.TCP_ULP, b"tls")
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise
    s.setsockopt(uapi.SOL_TLS, opt, st.crypto_info().pack())


def ktls_pair(cipher: str, port: int = PORT) -> tuple[socket.socket, socket.socket,
                                                      DirectionState, DirectionState]:
    """A connected pair with TLS_TX and TLS_RX on both ends: (c, s, c->s, s->c)."""
    c, s = connect(port)
    ab, ba = states(cipher)
    install(c, uapi.TLS_TX, ab)
    install(c, uapi.TLS_RX, ba)
    install(s, uapi.TLS_TX, ba)
    install(s, uapi.TLS_RX, ab)
    return c, s, ab, ba


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


def err_name(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno:
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


# ---- the wire: capture on the receiving port, reassemble, decrypt ------------

class Capture:
    """An AF_PACKET socket on ``ktb0`` (in ktls-b) collecting TCP payload by sequence number.

    Started before the connection exists, so it sees the SYN and the initial
    sequence number; ``stream()`` returns the byte stream the client sent, checking
    that retransmitted bytes equal the first copy.
    """

    def __init__(self) -> None:
        with in_netns(topology.NS_B):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE
        self.sock.bind((DEV_B, ETH_P_ALL))
        self.sock.settimeout(0.5)
        self.frames: list[bytes] = []
        self.stop = threading.Event()
        self.worker = Worker(self._loop)

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                frame, addr = self.sock.recvfrom(1 << 18)
            except TimeoutError:
                continue
            if addr[2] != socket.PACKET_OUTGOING:
                self.frames.append(frame)

    def finish(self) -> dict[str, int]:
        time.sleep(1)
        self.stop.set()
        self.worker.result(30)
        _packets, drops = struct.unpack("II", self.sock.getsockopt(SOL_PACKET,
                                                                   PACKET_STATISTICS, 8))
        self.sock.close()
        return {"frames": len(self.frames), "socket_drops": drops}

    def segments(self, dport: int) -> tuple[int | None, list[tuple[int, bytes]], bool]:
        """(ISN, [(seq, payload)], FIN seen) of IPv4 TCP frames to ``dport``."""
        isn, segs, fin = None, [], False
        for f in self.frames:
            if len(f) < 34 or f[12:14] != b"\x08\x00" or f[23] != 6:
                continue
            ihl = (f[14] & 0x0F) * 4
            tot = int.from_bytes(f[16:18], "big")
            th = 14 + ihl
            if int.from_bytes(f[th + 2:th + 4], "big") != dport:
                continue
            seq = int.from_bytes(f[th + 4:th + 8], "big")
            flags = f[th + 13]
            doff = (f[th + 12] >> 4) * 4
            if flags & 0x02:
                isn = seq
            fin = fin or bool(flags & 0x01)
            payload = f[th + doff:14 + tot]
            if payload:
                segs.append((seq, payload))
        return isn, segs, fin


def reassemble(isn: int, segs: list[tuple[int, bytes]]) -> tuple[bytes, int, int]:
    """The contiguous stream from ISN+1: (bytes, retransmitted bytes, mismatching bytes)."""
    buf = bytearray()
    start = (isn + 1) & 0xFFFFFFFF
    again = mismatch = 0
    for off, data in sorted((((seq - start) & 0xFFFFFFFF, data) for seq, data in segs),
                            key=lambda sd: sd[0]):
        if off > len(buf):
            break  # a hole: what follows was never captured
        overlap = min(len(buf) - off, len(data))
        if overlap > 0:
            again += overlap
            mismatch += sum(x != y for x, y in zip(buf[off:off + overlap], data[:overlap],
                                                   strict=True))
        buf += data[overlap:]
    return bytes(buf), again, mismatch


def decrypt_wire(wire: bytes, st: DirectionState) -> tuple[bytes, int, str | None]:
    """Open every record with the reference layer: (plaintext, records, error)."""
    prot = RecordProtection(st)
    parser = RecordParser()
    plain = bytearray()
    try:
        for rec in parser.feed(wire):
            ctype, data = prot.open(rec)
            if ctype != 23:
                return bytes(plain), prot.seq - st.seq, f"record type {ctype}"
            plain += data
    except Exception as exc:
        return bytes(plain), prot.seq - st.seq, f"{type(exc).__name__}: {exc}"
    if parser.buffered:
        return bytes(plain), prot.seq - st.seq, f"{len(parser.buffered)} bytes of partial record"
    return bytes(plain), prot.seq - st.seq, None


# ---- cases --------------------------------------------------------------------

def case_bulk(cipher: str, nbytes: int) -> Facts:
    """Offload both ways on both ports: MBs each way, then 200 ping-pong records."""
    topology.setup("netdevsim", offload=True)
    before = Counters.read()
    c, s, _, _ = ktls_pair(cipher)
    opened = Counters.read(eth=False)
    facts: Facts = {"curr_open": opened.since(before)}
    facts["bulk"] = bulk_both_ways(c, s, nbytes, 16384, 1)
    mid = Counters.read()
    facts["bulk_delta"] = mid.since(before)
    facts["pp"] = ping_pong(c, s, 200, 1000, 7)
    facts["pp_delta"] = Counters.read().since(mid)
    close_all(c, s)
    facts["delta"] = Counters.settled().since(before)
    return facts


def case_software(cipher: str, nbytes: int) -> Facts:
    """The same traffic with the ports' TLS offload features off: the software path."""
    topo = topology.setup("netdevsim", offload=True)
    topology.set_offload(topo, False)
    before = Counters.read()
    c, s, _, _ = ktls_pair(cipher)
    facts: Facts = {"curr_open": Counters.read(eth=False).since(before)}
    facts["bulk"] = bulk_both_ways(c, s, nbytes, 16384, 3)
    facts["pp"] = ping_pong(c, s, 50, 1000, 8)
    close_all(c, s)
    facts["delta"] = Counters.settled().since(before)
    return facts


def _wire_run(cipher: str, nbytes: int, chunk: int, seed: int) -> Facts:
    """Client TX offloaded; the server's port captures, the server reads with software kTLS."""
    before = Counters.read()
    cap = Capture()
    c, s = connect()
    ab, _ = states(cipher)
    install(c, uapi.TLS_TX, ab)
    install(s, uapi.TLS_RX, ab)
    data = stream(seed, nbytes)
    rx = Worker(lambda: recv_exact(s, nbytes))
    calls = send_chunks(c, data, chunk)
    c.shutdown(socket.SHUT_WR)
    got = rx.result()
    cport = c.getsockname()[1]
    close_all(c, s)
    capstat = cap.finish()
    isn, segs, fin = cap.segments(PORT)
    facts: Facts = {"received_ok": got == data, "send_calls": calls, **capstat,
                    "isn_seen": isn is not None, "fin_seen": fin, "client_port": cport}
    if isn is not None:
        wire, again, mismatch = reassemble(isn, segs)
        plain, nrec, err = decrypt_wire(wire, ab)
        facts.update({"wire_bytes": len(wire), "retransmitted_bytes": again,
                      "retransmit_mismatch_bytes": mismatch, "records": nrec,
                      "decrypt_error": err, "wire_plaintext_ok": plain == data,
                      "wire_plaintext_bytes": len(plain)})
    facts["delta"] = Counters.read().since(before)
    return facts


def case_wire(cipher: str, nbytes: int) -> Facts:
    """Ciphertext made by the device, captured on the peer port, opened by records.py."""
    topology.setup("netdevsim", offload=True)
    ethtool_k(topology.NS_B, DEV_B, tls_hw_rx_offload=False)  # see ciphertext in the tap
    return _wire_run(cipher, nbytes, 16384, 11)


def case_loss(cipher: str, nbytes: int) -> Facts:
    """3% loss on the TX-offloaded sender's port: retransmits are rebuilt by the device."""
    topology.setup("netdevsim", offload=True)
    ethtool_k(topology.NS_B, DEV_B, tls_hw_rx_offload=False)
    tc(topology.NS_A, "qdisc", "add", "dev", DEV_A, "root", "netem", "loss", "3%")
    facts = _wire_run(cipher, nbytes, 5000, 12)
    # the same loss with the receiver's RX offload on: records split by holes
    ethtool_k(topology.NS_B, DEV_B, tls_hw_rx_offload=True)
    before = Counters.read()
    c, s, _, _ = ktls_pair(cipher, PORT + 1)
    facts["rx_bulk"] = bulk_both_ways(c, s, nbytes, 5000, 13)
    mid = Counters.read()
    facts["rx_delta"] = mid.since(before)
    # Bulk frames rarely hold whole records only; ping-pong ones do, loss or not.
    facts["rx_pp"] = ping_pong(c, s, 200, 1000, 14)
    close_all(c, s)
    facts["rx_pp_delta"] = Counters.settled().since(mid)
    return facts


def case_reorder(cipher: str, nbytes: int) -> Facts:
    """Reordering and loss towards an RX-offloaded receiver (software sender, see below).

    netem with a delay orphans the skbs it holds (skb_orphan_partial() cannot keep
    the owner of a decrypted skb) and validate_xmit then drops every skb that
    still needs encryption but has no socket ("unencrypted skb with no associated
    socket"), so the reordering sender here uses software kTLS TX.
    """
    topology.setup("netdevsim", offload=True)
    ethtool_k(topology.NS_B, DEV_B, tls_hw_tx_offload=False)
    tc(topology.NS_B, "qdisc", "add", "dev", DEV_B, "root", "netem", "delay", "2ms",
       "reorder", "25%", "50%", "loss", "1%")
    before = Counters.read()
    c, s, _, _ = ktls_pair(cipher)
    down = stream(21, nbytes)
    rx = Worker(lambda: recv_exact(c, nbytes))
    calls = send_chunks(s, down, 3000)
    got = rx.result()
    facts: Facts = {"down_ok": got == down, "send_calls": calls}
    mid = Counters.read()
    facts["bulk_delta"] = mid.since(before)
    # ping-pong the other way round: the receiver (a) answers, b sends records
    facts["pp"] = ping_pong(s, c, 200, 1000, 22)
    close_all(c, s)
    facts["pp_delta"] = Counters.settled().since(mid)
    facts["delta"] = Counters.read().since(before)
    return facts


def case_fail_add(cipher: str, nbytes: int) -> Facts:
    """fail_tx_add on a, fail_rx_add on b: those directions fall back to software."""
    setup_with_knobs()
    set_knob("a", "fail_tx_add", True)
    set_knob("b", "fail_rx_add", True)
    before = Counters.read()
    c, s, _, _ = ktls_pair(cipher)
    facts: Facts = {"knobs_after_add": [read_knob("a", "fail_tx_add"),
                                        read_knob("b", "fail_rx_add")]}
    facts["bulk"] = bulk_both_ways(c, s, nbytes // 4, 16384, 31)
    close_all(c, s)
    facts["delta"] = Counters.settled().since(before)
    return facts


def case_refuse(cipher: str, nbytes: int) -> Facts:
    """refuse_aes_gcm_256 on both ports: 256 goes to software, 128 is still offloaded."""
    setup_with_knobs()
    for side in ("a", "b"):
        set_knob(side, "refuse_aes_gcm_256", True)
    facts: Facts = {}
    for n, ciph in enumerate(("aes-gcm-256", "aes-gcm-128")):
        before = Counters.read()
        c, s, _, _ = ktls_pair(ciph, PORT + n)
        facts[ciph] = bulk_both_ways(c, s, nbytes // 4, 16384, 41 + n)
        close_all(c, s)
        facts[f"{ciph}_delta"] = Counters.settled().since(before)
    return facts


def case_corrupt(cipher: str, nbytes: int) -> Facts:
    """tx_corrupt on a: the next record a encrypts has a bad tag; b's read fails."""
    setup_with_knobs()
    before = Counters.read()
    c, s, _, _ = ktls_pair(cipher)
    set_knob("a", "tx_corrupt", True)
    c.sendall(b"x" * 1000)
    facts: Facts = {"knob_after": read_knob("a", "tx_corrupt")}
    try:
        got = recv_exact(s, 1000)
        facts["error"] = None
        facts["received"] = len(got)
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


def case_resync(cipher: str, nbytes: int) -> Facts:
    """rx_drop_sync on b mid-stream: the device loses the framing and resyncs."""
    setup_with_knobs()
    c, s, _, _ = ktls_pair(cipher)
    facts: Facts = {"warmup": ping_pong(c, s, 20, 1000, 51)}
    before = Counters.read()
    set_knob("b", "rx_drop_sync", True)
    facts["pp"] = ping_pong(c, s, 200, 1000, 52)
    facts["knob_after"] = read_knob("b", "rx_drop_sync")
    close_all(c, s)
    facts["delta"] = Counters.settled().since(before)
    return facts


def case_rekey(cipher: str, nbytes: int) -> Facts:
    """A second TLS_TX/TLS_RX on offloaded sockets: EBUSY, the connection still works."""
    topology.setup("netdevsim", offload=True)
    before = Counters.read()
    c, s, _, _ = ktls_pair(cipher)
    nxt_ab, _ = states(cipher)
    facts: Facts = {}
    for name, sk, opt, st in (("tx", c, uapi.TLS_TX, nxt_ab), ("rx", s, uapi.TLS_RX, nxt_ab)):
        try:
            sk.setsockopt(uapi.SOL_TLS, opt, st.crypto_info().pack())
            facts[f"{name}_error"] = None
        except OSError as exc:
            facts[f"{name}_error"] = err_name(exc)
    facts["pp"] = ping_pong(c, s, 20, 1000, 61)
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


def case_delete(cipher: str, nbytes: int) -> Facts:
    """Delete both netdevsim devices while offloaded sockets are open and busy."""
    setup_with_knobs()
    if KMEMLEAK.exists():
        KMEMLEAK.write_text("clear")
    c, s, _, _ = ktls_pair(cipher)
    idle_c, idle_s, _, _ = ktls_pair(cipher, PORT + 1)
    facts: Facts = {"warmup": ping_pong(c, s, 20, 1000, 71)}
    opened = Counters.read(eth=False)
    facts["curr_before"] = {k: v for side in (opened.a, opened.b) for k, v in side.items()
                            if k.startswith("TlsCurr") and v}
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
    for dev_id in topology.NSIM_IDS:
        (topology.NSIM_BUS / "del_device").write_text(str(dev_id))
    facts["deleted"] = True
    after_del = Counters.read(eth=False)
    facts["curr_after_delete"] = {k: v for side in (after_del.a, after_del.b)
                                  for k, v in side.items() if k.startswith("TlsCurr") and v}
    # The link is gone: unblock the workers by closing, then make sure they end.
    for sk in (c, s):
        sk.shutdown(socket.SHUT_RDWR)
    for w in workers:
        w.result(60)
    idle_c.sendall(b"after delete")  # goes nowhere, must not crash
    close_all(c, s, idle_c, idle_s)
    facts["worker_errors"] = errors
    closed = Counters.read(eth=False)
    facts["curr_after_close"] = {k: v for side in (closed.a, closed.b) for k, v in side.items()
                                 if k.startswith("TlsCurr") and v}
    report = kmemleak_report()
    facts["kmemleak"] = "absent" if report is None else report
    return facts


CASES: dict[str, Callable[[str, int], Facts]] = {
    "bulk": case_bulk, "software": case_software, "wire": case_wire, "loss": case_loss,
    "reorder": case_reorder, "fail-add": case_fail_add, "refuse": case_refuse,
    "corrupt": case_corrupt, "resync": case_resync, "rekey": case_rekey,
    "delete": case_delete,
}


def run_case(spec: str, nbytes: int) -> Facts:
    """``NAME`` or ``NAME:CIPHER``; errors become facts, the topology is always torn down."""
    name, _, cipher = spec.partition(":")
    t0 = time.monotonic()
    try:
        facts = CASES[name](cipher or "aes-gcm-128", nbytes)
    except (OSError, CaseFailure, topology.TopologyError) as exc:
        facts = {"exception": type(exc).__name__, "message": str(exc),
                 "errno": err_name(exc)}
    finally:
        topology.teardown()
    facts["case_seconds"] = round(time.monotonic() - t0, 1)
    return facts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m ktlskit.offload",
        description="Run offload cases in this guest; print {case: facts} as one JSON line.")
    p.add_argument("cases", nargs="+", metavar="CASE[:CIPHER]",
                   help=f"one of {', '.join(CASES)}; cipher aes-gcm-128 (default) or -256")
    p.add_argument("--bytes", type=int, default=4 << 20, help="bytes per bulk stream")
    args = p.parse_args(argv)
    for spec in args.cases:
        name, _, cipher = spec.partition(":")
        if name not in CASES or cipher not in ("", "aes-gcm-128", "aes-gcm-256"):
            p.error(f"unknown case {spec!r}")
    out = {}
    for spec in args.cases:
        print(f"offload: {spec} ...", file=sys.stderr, flush=True)
        out[spec] = run_case(spec, args.bytes)
        print(f"offload: {spec} done in {out[spec]['case_seconds']}s", file=sys.stderr,
              flush=True)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
