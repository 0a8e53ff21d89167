"""The wire oracle for rekeys: which key each captured record is under.

Given the records of one direction (reassembled from a capture, ``wire.reassemble``) and the
direction's first keys, every record must open under exactly one key of the chain (the key in
use or the next one, RFC 8446 §4.6.3); the key changes only right after a KeyUpdate record and
then for good: no record under the old key follows the switch. Retransmissions are checked by
the reassembly, whose overlapping bytes must match: a retransmitted old-key record carries the
same ciphertext, so the old key.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..keyschedule import DirectionState
from ..records import (
    HANDSHAKE_KEY_UPDATE,
    ContentType,
    RawRecord,
    RecordParser,
    RecordProtection,
)


@dataclass(frozen=True)
class EpochReport:
    plaintext: bytes
    epochs: tuple[int, ...]
    """The key (0 = the first) of each record."""
    key_updates: int
    error: str | None


def _opens(st: DirectionState, seq: int, rec: RawRecord) -> tuple[int, bytes] | None:
    try:
        return RecordProtection(st.with_seq(seq)).open(rec)
    except Exception:
        return None


def _is_key_update(ctype: int, body: bytes) -> bool:
    return ctype == ContentType.HANDSHAKE and len(body) >= 1 and body[0] == HANDSHAKE_KEY_UPDATE


def follow_epochs(wire: bytes, first: DirectionState) -> EpochReport:
    """Open ``wire`` record by record, following KeyUpdates; stop at the first violation."""
    cur, seq, after_ku = first, first.seq, False
    epochs: list[int] = []
    plain = bytearray()
    updates = 0

    def done(error: str | None) -> EpochReport:
        return EpochReport(bytes(plain), tuple(epochs), updates, error)

    parser = RecordParser()
    for n, rec in enumerate(parser.feed(wire)):
        nxt = cur.next()
        old, new = _opens(cur, seq, rec), _opens(nxt, 0, rec)
        where = f"record {n} (key {updates}, number {seq})"
        if old and new:
            return done(f"{where} opens under two keys")
        if not old and not new:
            return done(f"{where} opens under no key")
        if new and not after_ku:
            return done(f"{where} is under the next key without a KeyUpdate before it")
        if old and after_ku:
            return done(f"{where} is under the old key after the KeyUpdate")
        if new:
            cur, seq, after_ku = nxt, 0, False
            updates += 1
        ctype, body = old or new  # type: ignore[misc]
        epochs.append(updates)
        seq += 1
        if ctype == 23:
            plain += body
        after_ku = _is_key_update(ctype, body)
    if parser.buffered:
        return done(f"{len(parser.buffered)} bytes of partial record")
    return done(None)
