"""The rekey wire oracle on records sealed by the reference layer (real AES-GCM)."""

import os

from ktlskit.keyschedule import DirectionState
from ktlskit.offload.rekeywire import follow_epochs
from ktlskit.records import RecordProtection, encode_key_update


def _first() -> DirectionState:
    return DirectionState.from_tls13_secret("aes-gcm-128", os.urandom(32), 7)


def _stream(first: DirectionState, plan: list[str]) -> bytes:
    """``d``: a data record under the current key, ``k``: a KeyUpdate then the next key,
    ``K``: the next key without KeyUpdate, ``o``: a record under the key before the current."""
    prot, prev = RecordProtection(first), None
    out = b""
    for i, step in enumerate(plan):
        if step == "d":
            out += prot.seal(23, bytes([i]) * 100)
        elif step == "k":
            out += prot.seal(22, encode_key_update(False))
            prev = RecordProtection(prot.state)
            prot.key_update()
        elif step == "K":
            prev = RecordProtection(prot.state)
            prot.key_update()
        elif step == "o":
            assert prev is not None
            out += prev.seal(23, b"old")
    return out


def test_records_follow_each_key_update() -> None:
    first = _first()
    rep = follow_epochs(_stream(first, list("ddkddkkd")), first)
    assert rep.error is None, rep
    assert rep.epochs == (0, 0, 0, 1, 1, 1, 2, 3)
    assert rep.key_updates == 3 and len(rep.plaintext) == 500


def test_next_key_without_key_update_is_caught() -> None:
    first = _first()
    rep = follow_epochs(_stream(first, list("ddKd")), first)
    assert rep.error and "without a KeyUpdate" in rep.error, rep


def test_old_key_after_the_switch_is_caught() -> None:
    first = _first()
    rep = follow_epochs(_stream(first, list("dkod")), first)
    assert rep.error and "old key after the KeyUpdate" in rep.error, rep


def test_garbage_opens_under_no_key() -> None:
    first = _first()
    wire = bytearray(_stream(first, list("ddd")))
    wire[-3] ^= 1
    rep = follow_epochs(bytes(wire), first)
    assert rep.error and "record 2" in rep.error and "no key" in rep.error, rep
