"""Reference record layer: RFC 8448 known answers, round trips, tampering, framing, KeyUpdate."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from ktlskit import ciphers, records, uapi
from ktlskit.keyschedule import DirectionState
from ktlskit.records import (
    ContentType,
    RawRecord,
    RecordAuthError,
    RecordFormatError,
    RecordParser,
    RecordProtection,
    RecordTooLongError,
)

RFC = {
    k: bytes.fromhex(v)
    for k, v in json.loads(
        (Path(__file__).parent / "fixtures/rfc8448_simple_1rtt.json").read_text()
    ).items()
    if not k.startswith("_")
}
VERSIONS = [uapi.TLS_1_2_VERSION, uapi.TLS_1_3_VERSION]


def rfc_state(prefix: str) -> DirectionState:
    return DirectionState(
        ciphers.AES_GCM_128, uapi.TLS_1_3_VERSION, RFC[f"{prefix}_key"], RFC[f"{prefix}_iv"]
    )


def make_state(cipher: ciphers.CipherSpec, version: int, seq: int = 0) -> DirectionState:
    if version == uapi.TLS_1_3_VERSION:
        return DirectionState.from_tls13_secret(cipher, os.urandom(cipher.hash_len), seq)
    return DirectionState.from_tls12(
        cipher, os.urandom(cipher.key_size), os.urandom(cipher.tls12_fixed_iv_size), seq
    )


# --- RFC 8448 known answers ----------------------------------------------------------------


def test_kat_client_finished_record() -> None:
    state = rfc_state("client_handshake")
    record = records.seal_tls13(state, 0, ContentType.HANDSHAKE, RFC["client_finished_message"])
    assert record == RFC["client_finished_record_seq0"]
    assert records.open_record(state, 0, record) == (22, RFC["client_finished_message"])


def test_kat_client_application_data_and_close_notify() -> None:
    tx = RecordProtection(rfc_state("client_application"))
    data = tx.seal(ContentType.APPLICATION_DATA, RFC["client_application_data"])
    assert data == RFC["client_application_data_record_seq0"]
    alert = tx.seal(ContentType.ALERT, records.encode_alert(1, 0))
    assert alert == RFC["client_close_notify_record_seq1"]
    rx = RecordProtection(rfc_state("client_application"))
    assert rx.open(data) == (23, RFC["client_application_data"])
    assert rx.open(alert) == (21, b"\x01\x00")
    assert rx.seq == 2


def test_kat_server_close_notify_at_seq_2() -> None:
    state = rfc_state("server_application")
    record = RFC["server_close_notify_record_seq2"]
    assert records.seal_tls13(state, 2, ContentType.ALERT, b"\x01\x00") == record
    assert records.open_tls13(state, 2, records.parse_record(record)) == (21, b"\x01\x00")
    with pytest.raises(RecordAuthError):
        records.open_tls13(state, 1, records.parse_record(record))


# --- independent constructions (guard the AAD and nonce formats) ---------------------------


def test_tls12_gcm_record_layout_by_hand() -> None:
    key, salt, seq, payload = os.urandom(16), os.urandom(4), 7, b"hello kTLS"
    state = DirectionState.from_tls12("aes-gcm-128", key, salt, seq)
    record = records.seal_tls12(state, seq, 23, payload)
    explicit = seq.to_bytes(8, "big")
    aad = seq.to_bytes(8, "big") + bytes([23, 3, 3]) + len(payload).to_bytes(2, "big")
    sealed = AESGCM(key).encrypt(salt + explicit, payload, aad)
    body = explicit + sealed
    assert record == bytes([23, 3, 3]) + len(body).to_bytes(2, "big") + body


def test_tls12_chacha_record_layout_by_hand() -> None:
    key, iv, seq, payload = os.urandom(32), os.urandom(12), 300, b"x" * 33
    state = DirectionState.from_tls12("chacha20-poly1305", key, iv, seq)
    record = records.seal_tls12(state, seq, 21, payload)
    nonce = bytes(a ^ b for a, b in zip(iv, seq.to_bytes(12, "big"), strict=True))
    aad = seq.to_bytes(8, "big") + bytes([21, 3, 3]) + len(payload).to_bytes(2, "big")
    sealed = ChaCha20Poly1305(key).encrypt(nonce, payload, aad)
    assert record == bytes([21, 3, 3]) + len(sealed).to_bytes(2, "big") + sealed


def test_tls13_chacha_record_layout_by_hand() -> None:
    state = DirectionState.from_tls13_secret("chacha20-poly1305", os.urandom(32), 0)
    seq, payload = 0x0102030405, b"abc"
    record = records.seal_tls13(state, seq, 22, payload, padding=3)
    inner = payload + b"\x16" + bytes(3)
    header = bytes([23, 3, 3]) + (len(inner) + 16).to_bytes(2, "big")
    nonce = bytes(a ^ b for a, b in zip(state.iv, seq.to_bytes(12, "big"), strict=True))
    assert record == header + ChaCha20Poly1305(state.key).encrypt(nonce, inner, header)


# --- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=["tls12", "tls13"])
@pytest.mark.parametrize("cipher", ciphers.available(), ids=lambda c: c.name)
def test_round_trip(cipher: ciphers.CipherSpec, version: int) -> None:
    state = make_state(cipher, version, seq=5)
    tx, rx = RecordProtection(state), RecordProtection(state)
    messages = [
        (ContentType.APPLICATION_DATA, b""),
        (ContentType.APPLICATION_DATA, os.urandom(1)),
        (ContentType.HANDSHAKE, records.encode_key_update(False)),
        (ContentType.ALERT, b"\x01\x00"),
        (ContentType.APPLICATION_DATA, os.urandom(records.MAX_PLAINTEXT)),
    ]
    wire = b"".join(tx.seal(t, m) for t, m in messages)
    parsed = RecordParser().feed(wire)
    assert len(parsed) == len(messages)
    for record, expected in zip(parsed, messages, strict=True):
        assert len(record.fragment) <= records.max_fragment_len(state)
        assert rx.open(record) == expected
    assert tx.seq == rx.seq == 5 + len(messages)


@pytest.mark.parametrize("cipher", [c for c in ciphers.ALL if not c.userspace_available])
def test_unavailable_cipher_raises_typed_error(cipher: ciphers.CipherSpec) -> None:
    state = make_state(cipher, uapi.TLS_1_2_VERSION)
    with pytest.raises(ciphers.CipherUnavailableError):
        RecordProtection(state)
    with pytest.raises(ciphers.CipherUnavailableError):
        records.seal_record(state, 0, 23, b"x")


def test_tls13_padding_is_hidden_and_bounded() -> None:
    state = make_state(ciphers.AES_GCM_256, uapi.TLS_1_3_VERSION)
    record = records.seal_tls13(state, 0, 23, b"data", padding=100)
    assert len(record) == 5 + 4 + 1 + 100 + 16
    assert records.open_record(state, 0, record) == (23, b"data")
    full = records.seal_tls13(state, 1, 23, b"", padding=records.MAX_PLAINTEXT)
    assert len(records.parse_record(full).fragment) == records.max_fragment_len(state)
    assert records.open_record(state, 1, full) == (23, b"")
    with pytest.raises(RecordTooLongError):
        records.seal_tls13(state, 0, 23, b"d", padding=records.MAX_PLAINTEXT)
    with pytest.raises(RecordFormatError, match="no padding"):
        records.seal_record(make_state(ciphers.AES_GCM_128, uapi.TLS_1_2_VERSION), 0, 23, b"", 1)


def test_seal_many_splits_at_max_plaintext() -> None:
    state = make_state(ciphers.CHACHA20_POLY1305, uapi.TLS_1_3_VERSION)
    tx, rx = RecordProtection(state), RecordProtection(state)
    data = os.urandom(2 * records.MAX_PLAINTEXT + 10)
    parsed = RecordParser().feed(tx.seal_many(23, data))
    assert len(parsed) == 3
    assert b"".join(rx.open(r)[1] for r in parsed) == data


def test_key_update_in_sync() -> None:
    state = make_state(ciphers.AES_GCM_128, uapi.TLS_1_3_VERSION)
    tx, rx = RecordProtection(state), RecordProtection(state)
    ku = tx.seal(ContentType.HANDSHAKE, records.encode_key_update(True))
    new_tx = tx.key_update()
    after = tx.seal(23, b"new key")
    assert rx.open(ku) == (22, b"\x18\x00\x00\x01\x01")
    with pytest.raises(RecordAuthError):
        rx.open(after)  # still on the old key
    assert rx.key_update() == new_tx
    assert rx.open(after) == (23, b"new key")
    assert rx.seq == 1 and rx.state.generation == 1


# --- tampering and malformed input ---------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=["tls12", "tls13"])
@pytest.mark.parametrize("cipher", ciphers.available(), ids=lambda c: c.name)
def test_tamper_detection(cipher: ciphers.CipherSpec, version: int) -> None:
    state = make_state(cipher, version)
    record = records.seal_record(state, 3, 23, b"authentic payload")
    for pos in range(3, len(record)):  # every length-field, nonce, ciphertext and tag byte
        if pos in (3, 4):
            continue  # a changed length is a framing error, covered below
        bad = bytearray(record)
        bad[pos] ^= 0x01
        with pytest.raises(RecordAuthError):
            records.open_record(state, 3, bytes(bad))
    with pytest.raises(RecordAuthError):
        records.open_record(state, 4, record)  # wrong sequence number
    if version == uapi.TLS_1_2_VERSION:
        retyped = bytes([22]) + record[1:]  # content type is authenticated in TLS 1.2
        with pytest.raises(RecordAuthError):
            records.open_record(state, 3, retyped)


def test_tls13_outer_type_and_version_checked() -> None:
    state = make_state(ciphers.AES_GCM_128, uapi.TLS_1_3_VERSION)
    record = records.seal_tls13(state, 0, 23, b"x")
    with pytest.raises(RecordFormatError, match="outer type 22"):
        records.open_record(state, 0, bytes([22]) + record[1:])
    with pytest.raises(RecordFormatError, match="0x0301"):
        records.open_record(state, 0, record[:1] + b"\x03\x01" + record[3:])


def test_length_limits() -> None:
    for version in VERSIONS:
        state = make_state(ciphers.AES_GCM_128, version)
        limit = records.max_fragment_len(state)
        too_long = RawRecord(23, 0x0303, bytes(limit + 1))
        with pytest.raises(RecordTooLongError):
            records.open_record(state, 0, too_long)
        with pytest.raises(RecordTooLongError):
            records.seal_record(state, 0, 23, bytes(records.MAX_PLAINTEXT + 1))
        with pytest.raises(RecordFormatError, match="shorter than the minimum"):
            records.open_record(state, 0, RawRecord(23, 0x0303, bytes(16)))
    # kernel tls_rx_msg_size limits: 2^14 + tag (+ 8 explicit nonce in 1.2, + 1 type in 1.3)
    assert records.max_fragment_len(make_state(ciphers.AES_CCM_128, 0x0303)) == 16384 + 24
    assert records.max_fragment_len(make_state(ciphers.CHACHA20_POLY1305, 0x0303)) == 16384 + 16
    assert records.max_fragment_len(make_state(ciphers.SM4_GCM, 0x0304)) == 16384 + 17


def test_inner_plaintext_without_content_type() -> None:
    state = make_state(ciphers.AES_GCM_128, uapi.TLS_1_3_VERSION)
    inner = bytes(20)  # all padding, no content type
    header = bytes([23, 3, 3]) + (len(inner) + 16).to_bytes(2, "big")
    sealed = AESGCM(state.key).encrypt(state.iv, inner, header)
    with pytest.raises(RecordFormatError, match="no non-zero content type"):
        records.open_record(state, 0, header + sealed)


def test_empty_non_data_records_refused() -> None:
    state = make_state(ciphers.AES_GCM_128, uapi.TLS_1_3_VERSION)
    with pytest.raises(RecordFormatError, match="zero-length"):
        records.seal_record(state, 0, ContentType.HANDSHAKE, b"")
    with pytest.raises(RecordFormatError, match="invalid content type"):
        records.seal_record(state, 0, 0, b"x")


def test_parse_record_exactness() -> None:
    with pytest.raises(RecordFormatError, match="5-byte header"):
        records.parse_record(b"\x17\x03")
    with pytest.raises(RecordFormatError, match="says 3 bytes"):
        records.parse_record(b"\x17\x03\x03\x00\x03ab")


# --- stream splitting ----------------------------------------------------------------------


def test_parser_handles_arbitrary_splits() -> None:
    state = make_state(ciphers.AES_GCM_128, uapi.TLS_1_3_VERSION)
    tx = RecordProtection(state)
    payloads = [os.urandom(n) for n in (0, 1, 5, 300, 5000)]
    wire = b"".join(tx.seal(23, p) for p in payloads)
    rng = random.Random(1234)
    for _ in range(20):
        parser, rx, got = RecordParser(), RecordProtection(state), []
        pos = 0
        while pos < len(wire):
            step = rng.randint(1, 700)
            for record in parser.feed(wire[pos : pos + step]):
                got.append(rx.open(record)[1])
            pos += step
        assert got == payloads
        assert parser.buffered == b""


def test_parser_byte_by_byte_and_buffered_tail() -> None:
    parser = RecordParser()
    wire = b"\x17\x03\x03\x00\x02hi" + b"\x15\x03\x03\x00"
    out = []
    for i in range(len(wire)):
        out += parser.feed(wire[i : i + 1])
    assert out == [RawRecord(23, 0x0303, b"hi")]
    assert parser.buffered == b"\x15\x03\x03\x00"
    assert parser.take_buffered() == b"\x15\x03\x03\x00"
    assert parser.buffered == b""


def test_parser_rejects_bad_headers() -> None:
    with pytest.raises(RecordFormatError, match="0x0300"):
        RecordParser().feed(b"\x17\x03\x00\x00\x01x")
    with pytest.raises(RecordFormatError, match="content type 99"):
        RecordParser().feed(b"\x63\x03\x03\x00\x01x")
    with pytest.raises(RecordTooLongError):
        RecordParser().feed(b"\x17\x03\x03\xff\xff")  # rejected from the header alone
    with pytest.raises(RecordTooLongError):
        RecordParser(max_fragment=16384 + 17).feed(
            b"\x17\x03\x03" + (16384 + 18).to_bytes(2, "big")
        )
    hello = RecordParser(versions=(0x0301, 0x0303)).feed(b"\x16\x03\x01\x00\x01\x01")
    assert hello == [RawRecord(22, 0x0301, b"\x01")]


# --- KeyUpdate and handshake framing -------------------------------------------------------


def test_key_update_encoding() -> None:
    assert records.encode_key_update(True) == bytes.fromhex("1800000101")
    assert records.encode_key_update(False) == bytes.fromhex("1800000100")
    assert records.decode_key_update(bytes.fromhex("1800000101")) is True
    assert records.decode_key_update(bytes.fromhex("1800000100")) is False
    assert records.is_key_update(bytes.fromhex("1800000100"))
    assert not records.is_key_update(bytes.fromhex("0400000100"))


@pytest.mark.parametrize(
    "bad",
    [
        "1800000102",  # request_update 2 is illegal
        "180000020000",  # body of 2 bytes
        "18000000",  # empty body
        "1800000101" + "1800000100",  # two messages
        "0400000100",  # not a KeyUpdate
        "18000001",  # truncated
    ],
)
def test_key_update_decoding_rejects(bad: str) -> None:
    with pytest.raises(RecordFormatError):
        records.decode_key_update(bytes.fromhex(bad))


def test_split_handshake_messages() -> None:
    ticket = records.encode_handshake(records.HANDSHAKE_NEW_SESSION_TICKET, b"T" * 10)
    data = ticket + records.encode_key_update(True)
    assert records.split_handshake(data) == [(4, b"T" * 10), (24, b"\x01")]
    with pytest.raises(RecordFormatError):
        records.split_handshake(data[:-1])
