"""The wire check of vmtests/test_offload.py: TCP reassembly and record opening, on the host."""

from __future__ import annotations

import os
import struct

from ktlskit.keyschedule import DirectionState
from ktlskit.offload.wire import Capture, decrypt_wire, reassemble
from ktlskit.records import RecordProtection


def _state() -> DirectionState:
    return DirectionState.from_tls12("aes-gcm-128", os.urandom(16), os.urandom(4), seq=77)


def _frame(sport: int, dport: int, seq: int, flags: int, payload: bytes) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 1000, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 0, 0, 64, 6, 0,
                     bytes(4), bytes(4))
    return bytes(6) + bytes(6) + b"\x08\x00" + ip + tcp + payload + b"\0" * 4  # + padding


def test_segments_reassemble_and_open() -> None:
    st = _state()
    plain = os.urandom(50_000)
    wire = RecordProtection(st).seal_many(23, plain)
    isn = 0xFFFFFF00  # wraps around 2**32 inside the stream
    cap = Capture.__new__(Capture)
    cap.frames = [_frame(1, 4500, isn, 0x02, b"")]
    segs = [(off, wire[off:off + 1400]) for off in range(0, len(wire), 1400)]
    resent = segs[3]
    for off, data in [*segs[:5], resent, *segs[5:]]:
        cap.frames.append(_frame(1, 4500, (isn + 1 + off) & 0xFFFFFFFF, 0x10, data))
    cap.frames.append(_frame(4500, 1, 5, 0x10, b"other direction"))
    cap.frames.append(_frame(1, 4500, (isn + 1 + len(wire)) & 0xFFFFFFFF, 0x11, b""))
    got_isn, got_segs, fin = cap.segments(4500)
    assert got_isn == isn and fin
    stream, again, mismatch = reassemble(isn, got_segs)
    assert stream == wire and again == len(resent[1]) and mismatch == 0
    recs = decrypt_wire(stream, st)
    assert recs.error is None and recs.plaintext == plain
    assert recs.records == -(-len(plain) // 16384) and set(recs.types) == {23}


def test_a_changed_retransmit_and_a_bad_tag_are_reported() -> None:
    st = _state()
    wire = bytearray(RecordProtection(st).seal_many(23, os.urandom(3000)))
    segs = [(1, bytes(wire[:1000])), (1001, bytes(wire[1000:]))]
    changed = bytearray(wire[1000:1100])
    changed[5] ^= 1
    _, again, mismatch = reassemble(0, [*segs, (1001, bytes(changed))])
    assert (again, mismatch) == (100, 1)
    wire[-1] ^= 1
    err = decrypt_wire(bytes(wire), st).error
    assert err is not None and "Auth" in err


def test_a_hole_stops_the_stream() -> None:
    stream, _, _ = reassemble(0, [(1, b"abc"), (10, b"xyz")])
    assert stream == b"abc"


def _state13() -> DirectionState:
    return DirectionState.from_tls13_secret("aes-gcm-256", os.urandom(48), seq=1 << 40)


def test_tls13_records_open_with_their_inner_types() -> None:
    st = _state13()
    prot = RecordProtection(st)
    wire = prot.seal_many(23, os.urandom(40_000)) + prot.seal(22, b"\x04\x00\x00\x01x", 7)
    recs = decrypt_wire(wire, st)
    assert recs.error is None and recs.types == (23, 23, 23, 22)
    assert len(recs.plaintext) == 40_000  # only application data counts as plaintext
    # no explicit nonce: the header is followed by ciphertext, 5 + 1 + 16 bytes of overhead
    assert len(wire) == 40_000 + 5 + 3 * 22 + 5 + 1 + 7 + 16


def test_tls13_record_number_is_in_the_nonce() -> None:
    """A record sealed with the next record number does not open in its place."""
    st = _state13()
    first = RecordProtection(st.with_seq(st.seq + 1)).seal(23, b"x" * 100)
    err = decrypt_wire(first, st).error
    assert err is not None and err.startswith("record 0: RecordAuthError")
