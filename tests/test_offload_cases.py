"""Host side of the offload cases: case specs and the per-version record sizes."""

from __future__ import annotations

from itertools import accumulate

import pytest

from ktlskit.offload.rekeysplit import HEAD, SPLIT, _records, after_key_update, at_switch
from ktlskit.offload.run import CASES, parse_spec, state_at_failure
from ktlskit.offload.traffic import Suite


def test_spec_defaults_and_parts() -> None:
    assert parse_spec("bulk") == ("bulk", Suite("1.3", "aes-gcm-128"))
    assert parse_spec("wire:1.2:aes-gcm-256") == ("wire", Suite("1.2", "aes-gcm-256"))
    assert parse_spec("loss:aes-gcm-256") == ("loss", Suite("1.3", "aes-gcm-256"))


@pytest.mark.parametrize("spec", ["nope", "bulk:1.1", "bulk:chacha20-poly1305", "bulk::"])
def test_bad_specs_name_the_part(spec: str) -> None:
    with pytest.raises(ValueError, match=r"unknown case|neither a TLS version"):
        parse_spec(spec)


def test_record_overhead_per_version() -> None:
    assert Suite("1.2").overhead == 29  # header, explicit nonce, tag
    assert Suite("1.3").overhead == 22  # header, inner content type, tag


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_keys_for_both_directions_differ(version: str) -> None:
    ab, ba = Suite(version, "aes-gcm-256").states()
    assert ab.key != ba.key and len(ab.key) == 32
    assert ab.crypto_info().pack() != ba.crypto_info().pack()


def test_every_case_is_listed() -> None:
    assert {"bulk", "wire", "records", "rekey", "delete"} <= set(CASES)


def test_errno_names_as_the_kernel_spells_them() -> None:
    import errno

    from ktlskit.offload.traffic import err_name

    assert err_name(OSError(errno.EOPNOTSUPP, "x")) == "EOPNOTSUPP"
    assert err_name(OSError(errno.EBADMSG, "x")) == "EBADMSG"
    assert err_name(TimeoutError()) == "TimeoutError"


def test_state_at_failure_says_what_it_could_not_read() -> None:
    """Without the case's namespaces and devices (here: the host) nothing raises; each part
    that could not be read says why, so a case's own error stays the one reported."""
    out = state_at_failure()
    assert str(out["counters"]).startswith("unreadable: "), out
    assert str(out["epochs_a"]).startswith("unreadable: ") and "epochs_b" in out, out


def _starts(parts: list[bytes]) -> list[int]:
    """Where each of ``parts`` starts in their concatenation."""
    return [0, *accumulate(map(len, parts[:-1]))]


def test_split_layouts_cut_the_stream_where_they_say() -> None:
    """rekeysplit.py: the frames are the records in order, cut SPLIT bytes into the header
    each layout means to split (N2's at the switch, N1's after the KeyUpdate)."""
    sealed, plain = _records(Suite("1.3").states()[0])
    assert [len(p) for p in plain] == [300, 300, 800, 800, 800]
    n1, n2 = _starts(sealed)[3:5]  # R0 R1 KU N1 N2 N3
    for split in (SPLIT, 0):
        frames, before = at_switch(sealed, split)
        assert b"".join(frames) == b"".join(sealed) and before == 1
        assert _starts(frames)[1:] == [n1 + HEAD, n2 + split, n2 + len(sealed[4])]
    frames, before = after_key_update(sealed)
    assert b"".join(frames) == b"".join(sealed) and before == 3
    assert _starts(frames)[1:] == [n1 + SPLIT, n2, n2 + HEAD, n2 + len(sealed[4])]
    for layout in (at_switch(sealed, SPLIT), after_key_update(sealed)):
        assert max(map(len, layout[0])) < 1000  # one segment each at an MTU of 1,500
