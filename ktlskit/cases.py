"""Guest-side kTLS cases: small, exact checks of the kernel's behaviour.

Each case builds its own loopback TCP connection in the guest, does one
thing to the kernel and returns facts as a dict (``run_case``, which the
vmtests call on the guest through ``ktlskit.hosts.call``; by hand:
``python -m ktlskit.cases NAME ...``). The vmtests assert on the facts and
on the /proc/net/tls_stat deltas around them.

Where the reference record layer can speak the cipher, one end is plain
TCP driven by ``records.py``: the kernel's ciphertext is checked by an
independent implementation, and the kernel is fed records we built
(tampered, padded) that a kTLS peer would never send.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import sys
import time
from collections.abc import Callable
from contextlib import closing

from . import uapi
from .ciphers import lookup
from .errors import KtlskitError
from .keyschedule import DirectionState
from .ksocket import Direction, KtlsInputError, KtlsSocket
from .records import ContentType, RecordParser, RecordProtection, encode_key_update
from .tlsstats import TLS_STAT, parse_tls_stat

Facts = dict[str, object]


def _pair() -> tuple[socket.socket, socket.socket]:
    with closing(socket.create_server(("127.0.0.1", 0))) as srv:
        a = socket.create_connection(srv.getsockname(), timeout=10)
        b, _ = srv.accept()
    b.settimeout(10)
    return a, b


def _states(version: str, cipher: str) -> tuple[DirectionState, DirectionState]:
    spec = lookup(cipher)
    if version == "1.3" and spec.tls13_suite is None:
        # No TLS 1.3 suite (ARIA): random keys, so the kernel itself gets to say no.
        return (DirectionState(spec, uapi.TLS_1_3_VERSION, os.urandom(spec.key_size),
                               os.urandom(12)),
                DirectionState(spec, uapi.TLS_1_3_VERSION, os.urandom(spec.key_size),
                               os.urandom(12)))
    if version == "1.3":
        return (DirectionState.from_tls13_secret(spec, os.urandom(spec.hash_len)),
                DirectionState.from_tls13_secret(spec, os.urandom(spec.hash_len)))
    n = spec.key_size
    fixed = spec.tls12_fixed_iv_size
    return (DirectionState.from_tls12(spec, os.urandom(n), os.urandom(fixed)),
            DirectionState.from_tls12(spec, os.urandom(n), os.urandom(fixed)))


def _ktls_pair(version: str, cipher: str, **kw: bool) -> tuple[KtlsSocket, KtlsSocket]:
    a, b = _pair()
    ab, ba = _states(version, cipher)
    ka, kb = KtlsSocket(a, **kw), KtlsSocket(b, **kw)
    for k, tx, rx in ((ka, ab, ba), (kb, ba, ab)):
        k.attach_ulp()
        try:
            k.install(Direction.TX, tx)
        except KtlsInputError:
            _ask_kernel(k, tx)  # the library knows the kernel says no: let it say so
            raise
        k.install(Direction.RX, rx)
    return ka, kb


def _ask_kernel(k: KtlsSocket, st: DirectionState) -> None:
    """Install ``st`` with a raw setsockopt, bypassing the library's own refusal."""
    info = st.crypto_info()
    k.setsockopt_raw(uapi.TLS_TX, info.pack())


def _ktls_vs_raw(version: str, cipher: str) -> tuple[KtlsSocket, socket.socket,
                                                    DirectionState, DirectionState]:
    """A kTLS socket and its plain-TCP peer, for the reference layer: (k, raw, tx, rx)."""
    sk, raw = _pair()
    tx, rx = _states(version, cipher)
    k = KtlsSocket(sk)
    k.attach_ulp()
    k.install(Direction.TX, tx)
    k.install(Direction.RX, rx)
    return k, raw, tx, rx


def _recv_exact(k: KtlsSocket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = k.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def stats() -> dict[str, int]:
    return parse_tls_stat(TLS_STAT.read_text())


# ---- cases ----------------------------------------------------------------

def case_data(version: str, cipher: str) -> Facts:
    """Data both ways between two kTLS sockets, and a non-data record type."""
    a, b = _ktls_pair(version, cipher)
    blob = os.urandom(100_000)
    a.send(blob)
    got_b = _recv_exact(b, len(blob))
    b.send(blob[::-1])
    got_a = _recv_exact(a, len(blob))
    a.send_record(ContentType.ALERT, b"\x01\x00")
    rtype, rdata = b.recv_record()
    return {"a_to_b": got_b == blob, "b_to_a": got_a == blob[::-1], "other_type": int(rtype),
            "other_data": rdata.hex(), "tx_readback": a.get_crypto(Direction.TX).cipher_type}


def case_oracle(version: str, cipher: str) -> Facts:
    """kTLS <-> the userspace reference record layer, both directions."""
    k, raw, tx, rx = _ktls_vs_raw(version, cipher)
    msg = os.urandom(40_000)
    k.send(msg)
    ref_rx = RecordProtection(tx)
    parser = RecordParser()
    plain = b""
    while len(plain) < len(msg):
        chunk = raw.recv(65536)
        if not chunk:
            break
        for rec in parser.feed(chunk):
            _, data = ref_rx.open(rec)
            plain += data
    ref_tx = RecordProtection(rx)
    raw.sendall(ref_tx.seal_many(ContentType.APPLICATION_DATA, msg[::-1]))
    back = _recv_exact(k, len(msg))
    return {"kernel_to_ref": plain == msg, "ref_to_kernel": back == msg[::-1],
            "records_from_kernel": ref_rx.seq}


def case_rekey(version: str, cipher: str, count: int = 1, requested: bool = False) -> Facts:
    """``count`` KeyUpdates from a, each followed by data; b follows (and answers)."""
    a, b = _ktls_pair(version, cipher)
    for i in range(count):
        a.send_key_update(requested)
        msg = f"after update {i}".encode()
        a.send(msg)
        if _recv_exact(b, len(msg)) != msg:  # recv handles the KeyUpdate first
            return {"ok": False, "failed_at": i}
        if requested:  # b answered with its own KeyUpdate: a must follow it
            b.send(b"pong")
            if _recv_exact(a, 4) != b"pong":
                return {"ok": False, "failed_at": i, "direction": "answer"}
    tx = a.get_crypto(Direction.TX)
    return {"ok": True, "a_sent": a.counters.key_updates_sent,
            "b_received": b.counters.key_updates_received,
            "b_sent": b.counters.key_updates_sent,
            "a_received": a.counters.key_updates_received,
            "readback_matches": tx.key == a.state(Direction.TX).key
            and int.from_bytes(tx.rec_seq, "big") > 0}


def case_tls12_rekey(version: str, cipher: str) -> Facts:
    """A second TLS_TX on a TLS 1.2 socket, past the library's own refusal: EBUSY."""
    a, _b = _ktls_pair("1.2", cipher, strict=False)
    nxt = _states("1.2", cipher)[0]
    try:
        a.rekey(Direction.TX, nxt)
    except KtlskitError as exc:
        return {"error": type(exc).__name__, "message": str(exc)}
    return {"error": None}


def case_keyexpired(version: str, cipher: str) -> Facts:
    """After a KeyUpdate is read, reads fail with EKEYEXPIRED and poll shows no POLLIN."""
    a, b = _ktls_pair("1.3", cipher, auto_key_update=False)
    a.send_key_update(False)
    a.send(b"new-key data")
    rtype, ku = b.recv_record(auto_key_update=False)
    poller = select.poll()
    poller.register(b.fileno(), select.POLLIN)
    pending_events = poller.poll(500)
    try:
        b.recv_record(auto_key_update=False)
        err = None
    except KtlskitError as exc:
        err = type(exc).__name__
    b.handle_key_update(ku)
    after_events = poller.poll(2000)
    data = _recv_exact(b, 12)
    return {"first_type": int(rtype), "error_while_pending": err,
            "pollin_while_pending": any(ev & select.POLLIN for _, ev in pending_events),
            "pollin_after_install": any(ev & select.POLLIN for _, ev in after_events),
            "data": data.decode(errors="replace")}


def case_queued_keyupdate(version: str, cipher: str) -> Facts:
    """Data, KeyUpdate, data arrive together: the read that returns the first data also
    decrypts the KeyUpdate and queues it; does poll() still say there is something to read?"""
    a, b = _ktls_pair("1.3", cipher, auto_key_update=False)
    a.send(b"before")
    a.send_key_update(False)
    a.send(b"after")
    time.sleep(0.3)  # loopback: all three records are in b's receive queue well before this
    first = b.recv_record(65536, auto_key_update=False)
    poller = select.poll()
    poller.register(b.fileno(), select.POLLIN)
    events = poller.poll(500)
    second = b.recv_record(65536, auto_key_update=False)  # tries recvmsg before polling
    b.handle_key_update(second[1])
    third = b.recv_record(65536, auto_key_update=False)
    return {"first": [int(first[0]), first[1].decode(errors="replace")],
            "pollin_with_keyupdate_queued": any(ev & select.POLLIN for _, ev in events),
            "second_type": int(second[0]),
            "third": [int(third[0]), third[1].decode(errors="replace")]}


def case_tamper(version: str, cipher: str) -> Facts:
    """A record with one flipped ciphertext bit from the reference layer: EBADMSG."""
    k, raw, _tx, rx = _ktls_vs_raw(version, cipher)
    rec = bytearray(RecordProtection(rx).seal(ContentType.APPLICATION_DATA, b"x" * 64))
    rec[10] ^= 0x01
    raw.sendall(bytes(rec))
    try:
        k.recv()
        err = None
    except KtlskitError as exc:
        err = type(exc).__name__
    return {"error": err}


def case_nopad(version: str, cipher: str) -> Facts:
    """TLS_RX_EXPECT_NO_PAD with a padded TLS 1.3 record: still delivered, retried."""
    k, raw, _tx, rx = _ktls_vs_raw("1.3", cipher)
    k.set_rx_no_pad(True)
    ref = RecordProtection(rx)
    raw.sendall(ref.seal(ContentType.APPLICATION_DATA, b"padded", padding=32))
    raw.sendall(ref.seal(ContentType.APPLICATION_DATA, b"plain!"))
    # A buffer larger than the record: only then does the kernel try zero-copy
    # decryption, find the padding and retry (the violation it counts).
    data = b""
    while len(data) < 12:
        chunk = k.recv(65536)
        if not chunk:
            break
        data += chunk
    return {"data": data.decode(errors="replace"), "no_pad_readback": k.get_rx_no_pad()}


def case_keyupdate_wire(version: str, cipher: str) -> Facts:
    """The KeyUpdate kTLS sends is the RFC 8446 message under the old key."""
    k, raw, tx, _rx = _ktls_vs_raw("1.3", cipher)
    k.send_key_update(True)
    k.send(b"after")
    ref = RecordProtection(tx)
    parser = RecordParser()
    got: list[tuple[int, bytes]] = []
    while len(got) < 2:
        for rec in parser.feed(raw.recv(4096)):
            got.append(ref.open(rec))
            if got[-1][0] == ContentType.HANDSHAKE:
                ref.key_update()
    return {"first": [int(got[0][0]), got[0][1].hex()], "second": [int(got[1][0]),
                                                                   got[1][1].decode()],
            "expected_body": encode_key_update(True).hex()}


CASES: dict[str, Callable[..., Facts]] = {
    "data": case_data, "oracle": case_oracle, "rekey": case_rekey,
    "tls12-rekey": case_tls12_rekey, "keyexpired": case_keyexpired,
    "queued-keyupdate": case_queued_keyupdate, "tamper": case_tamper,
    "nopad": case_nopad, "keyupdate-wire": case_keyupdate_wire,
}


def run_case(case: str, version: str = "1.3", cipher: str = "aes-gcm-128", count: int = 1,
             requested: bool = False) -> Facts:
    """One case: its facts, the tls_stat deltas around it, and the version asked for."""
    if case not in CASES:
        raise KtlskitError(f"unknown case {case!r}; known: {', '.join(sorted(CASES))}")
    kw = {"count": count, "requested": requested} if case == "rekey" else {}
    before = stats()
    try:
        facts = CASES[case](version, cipher, **kw)
    except KtlskitError as exc:
        facts = {"exception": type(exc).__name__, "message": str(exc)}
    after = stats()
    facts["tls_stat_delta"] = {k: v - before.get(k, 0) for k, v in after.items()
                               if v != before.get(k, 0)}
    facts["kernel_tls_version"] = uapi.TLS_1_3_VERSION if version == "1.3" else \
        uapi.TLS_1_2_VERSION
    return facts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ktlskit.cases")
    p.add_argument("case", choices=sorted(CASES))
    p.add_argument("--tls-version", default="1.3", choices=("1.2", "1.3"))
    p.add_argument("--cipher", default="aes-gcm-128")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--requested", action="store_true")
    args = p.parse_args(argv)
    facts = run_case(args.case, args.tls_version, args.cipher, args.count, args.requested)
    json.dump(facts, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
