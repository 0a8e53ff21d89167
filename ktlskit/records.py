"""Pure-Python TLS 1.2 / 1.3 AEAD record layer: the oracle the kernel is checked against.

Record protection follows RFC 5246 §6.2.3.3 with RFC 5288/6655 nonces (GCM/CCM: 4-byte
implicit salt || 8-byte explicit nonce sent in the record), RFC 7905 for ChaCha20-Poly1305 in
TLS 1.2 (nonce = IV XOR seq, no explicit nonce) and RFC 8446 §5.2-5.3 for TLS 1.3.

Length limits are the ones the kernel's ``tls_rx_msg_size`` enforces, which are the RFC limits
for 16-byte tags: a TLS 1.2 fragment may carry at most 2^14 plaintext bytes plus explicit nonce
and tag; a TLS 1.3 fragment at most 2^14 + 1 (content type) + tag, because the RFC caps the
inner plaintext, padding included, at 2^14 + 1 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from cryptography.exceptions import InvalidTag

from ktlskit import uapi
from ktlskit.ciphers import Aead
from ktlskit.errors import KtlskitError
from ktlskit.keyschedule import MAX_SEQ, DirectionState

RECORD_HEADER_SIZE: Final = 5
MAX_PLAINTEXT: Final = 1 << 14
LEGACY_RECORD_VERSION: Final = 0x0303
MAX_ANY_FRAGMENT: Final = MAX_PLAINTEXT + 2048
"""Largest fragment any TLS version allows on the wire (RFC 5246 TLSCiphertext)."""

HANDSHAKE_HEADER_SIZE: Final = 4
HANDSHAKE_KEY_UPDATE: Final = 24
HANDSHAKE_NEW_SESSION_TICKET: Final = 4


class ContentType(IntEnum):
    """TLS record content types (same numbers as the kernel's TLS_RECORD_TYPE_*)."""

    CHANGE_CIPHER_SPEC = uapi.TLS_RECORD_TYPE_CHANGE_CIPHER_SPEC
    ALERT = uapi.TLS_RECORD_TYPE_ALERT
    HANDSHAKE = uapi.TLS_RECORD_TYPE_HANDSHAKE
    APPLICATION_DATA = uapi.TLS_RECORD_TYPE_DATA


_CONTENT_TYPES: Final = frozenset(int(t) for t in ContentType)


class RecordError(KtlskitError):
    """Base of record layer errors."""


class RecordFormatError(RecordError):
    """The record or message is malformed (bad header, bad length, no content type)."""


class RecordTooLongError(RecordFormatError):
    """A record is longer than TLS permits (record_overflow)."""


class RecordAuthError(RecordError):
    """AEAD authentication failed (bad_record_mac): wrong key, sequence or tampered bytes."""


class RecordSequenceError(RecordError):
    """The 64-bit record sequence number would wrap."""


@dataclass(frozen=True)
class RawRecord:
    """One record as framed on the wire: 5-byte header fields plus the fragment."""

    content_type: int
    version: int
    fragment: bytes

    def header(self) -> bytes:
        """The 5-byte record header."""
        return make_header(self.content_type, len(self.fragment), self.version)

    def to_bytes(self) -> bytes:
        """Header followed by fragment."""
        return self.header() + self.fragment


def make_header(content_type: int, length: int, version: int = LEGACY_RECORD_VERSION) -> bytes:
    """A record header: type, version, 16-bit length."""
    if not 0 <= length <= 0xFFFF:
        raise RecordTooLongError(f"fragment length {length} does not fit 16 bits")
    return bytes([content_type]) + version.to_bytes(2, "big") + length.to_bytes(2, "big")


def parse_record(data: bytes) -> RawRecord:
    """Parse exactly one complete record; trailing or missing bytes are a format error."""
    if len(data) < RECORD_HEADER_SIZE:
        raise RecordFormatError(f"record shorter than its 5-byte header ({len(data)} bytes)")
    length = int.from_bytes(data[3:5], "big")
    if len(data) != RECORD_HEADER_SIZE + length:
        raise RecordFormatError(
            f"record header says {length} bytes of fragment, have {len(data) - RECORD_HEADER_SIZE}"
        )
    return RawRecord(data[0], int.from_bytes(data[1:3], "big"), bytes(data[5:]))


def _xor_nonce(iv12: bytes, seq: int) -> bytes:
    padded = seq.to_bytes(len(iv12), "big")
    return bytes(a ^ b for a, b in zip(iv12, padded, strict=True))


def _check_seq(seq: int) -> None:
    if not 0 <= seq <= MAX_SEQ:
        raise RecordSequenceError(f"record sequence number {seq} outside 0..2^64-1")


def max_fragment_len(state: DirectionState) -> int:
    """Largest protected fragment the receiver accepts for this state's version and cipher."""
    tag = state.cipher.tag_size
    if state.version == uapi.TLS_1_3_VERSION:
        return MAX_PLAINTEXT + 1 + tag
    return MAX_PLAINTEXT + _explicit_size(state) + tag


def _explicit_size(state: DirectionState) -> int:
    return 0 if state.uses_xor_nonce else state.cipher.tls12_explicit_nonce_size


def _aead(state: DirectionState) -> Aead:
    return state.cipher.aead(state.key)


# --- TLS 1.3 --------------------------------------------------------------------------------


def seal_tls13(
    state: DirectionState,
    seq: int,
    content_type: int,
    plaintext: bytes,
    padding: int = 0,
    aead: Aead | None = None,
) -> bytes:
    """A TLS 1.3 record: inner plaintext ``plaintext || type || zeros``, outer type 23."""
    _check_seq(seq)
    _check_content(content_type, plaintext)
    if padding < 0 or len(plaintext) + padding > MAX_PLAINTEXT:
        raise RecordTooLongError(
            f"plaintext ({len(plaintext)}) + padding ({padding}) exceeds {MAX_PLAINTEXT}"
        )
    inner = plaintext + bytes([content_type]) + bytes(padding)
    header = make_header(ContentType.APPLICATION_DATA, len(inner) + state.cipher.tag_size)
    sealed = (aead or _aead(state)).encrypt(_xor_nonce(state.iv, seq), inner, header)
    return header + sealed


def open_tls13(
    state: DirectionState, seq: int, record: RawRecord, aead: Aead | None = None
) -> tuple[int, bytes]:
    """Decrypt a TLS 1.3 record; returns (inner content type, content without padding)."""
    _check_seq(seq)
    _check_outer(state, record, outer_type=ContentType.APPLICATION_DATA)
    try:
        inner = (aead or _aead(state)).decrypt(
            _xor_nonce(state.iv, seq), record.fragment, record.header()
        )
    except InvalidTag:
        raise RecordAuthError(f"TLS 1.3 record {seq}: authentication failed") from None
    stripped = inner.rstrip(b"\x00")
    if not stripped:
        raise RecordFormatError("TLS 1.3 inner plaintext has no non-zero content type")
    content_type, content = stripped[-1], stripped[:-1]
    _check_content(content_type, content)
    return content_type, content


# --- TLS 1.2 --------------------------------------------------------------------------------


def _tls12_aad(seq: int, content_type: int, length: int) -> bytes:
    return seq.to_bytes(8, "big") + make_header(content_type, length)


def _tls12_nonce(state: DirectionState, seq: int, explicit: bytes) -> bytes:
    if state.uses_xor_nonce:
        return _xor_nonce(state.iv, seq)
    return state.iv + explicit


def seal_tls12(
    state: DirectionState,
    seq: int,
    content_type: int,
    plaintext: bytes,
    explicit_nonce: bytes | None = None,
    aead: Aead | None = None,
) -> bytes:
    """A TLS 1.2 AEAD record; GCM/CCM explicit nonce defaults to the 8-byte ``seq``."""
    _check_seq(seq)
    _check_content(content_type, plaintext)
    if len(plaintext) > MAX_PLAINTEXT:
        raise RecordTooLongError(f"plaintext {len(plaintext)} exceeds {MAX_PLAINTEXT}")
    size = _explicit_size(state)
    explicit = seq.to_bytes(8, "big") if explicit_nonce is None else explicit_nonce
    if size == 0:
        if explicit_nonce is not None:
            raise RecordFormatError(f"{state.cipher.name} has no explicit nonce in TLS 1.2")
        explicit = b""
    elif len(explicit) != size:
        raise RecordFormatError(f"explicit nonce must be {size} bytes, got {len(explicit)}")
    aad = _tls12_aad(seq, content_type, len(plaintext))
    sealed = (aead or _aead(state)).encrypt(_tls12_nonce(state, seq, explicit), plaintext, aad)
    fragment = explicit + sealed
    return make_header(content_type, len(fragment)) + fragment


def open_tls12(
    state: DirectionState, seq: int, record: RawRecord, aead: Aead | None = None
) -> tuple[int, bytes]:
    """Decrypt a TLS 1.2 AEAD record; returns (content type, plaintext)."""
    _check_seq(seq)
    _check_outer(state, record, outer_type=None)
    size = _explicit_size(state)
    explicit, sealed = record.fragment[:size], record.fragment[size:]
    plain_len = len(sealed) - state.cipher.tag_size
    aad = _tls12_aad(seq, record.content_type, plain_len)
    try:
        plaintext = (aead or _aead(state)).decrypt(_tls12_nonce(state, seq, explicit), sealed, aad)
    except InvalidTag:
        raise RecordAuthError(f"TLS 1.2 record {seq}: authentication failed") from None
    _check_content(record.content_type, plaintext)
    return record.content_type, plaintext


# --- shared checks --------------------------------------------------------------------------


def _check_content(content_type: int, content: bytes) -> None:
    if not 0 < content_type <= 0xFF:
        raise RecordFormatError(f"invalid content type {content_type}")
    # RFC 8446 §5.1/5.4: only application data may be empty.
    if not content and content_type != ContentType.APPLICATION_DATA:
        raise RecordFormatError(f"zero-length record of content type {content_type}")


def _check_outer(state: DirectionState, record: RawRecord, outer_type: int | None) -> None:
    if record.version != LEGACY_RECORD_VERSION:
        raise RecordFormatError(f"record version {record.version:#06x}, expected 0x0303")
    if outer_type is not None and record.content_type != outer_type:
        raise RecordFormatError(
            f"protected TLS 1.3 record has outer type {record.content_type}, expected {outer_type}"
        )
    length = len(record.fragment)
    if length > max_fragment_len(state):
        raise RecordTooLongError(
            f"fragment of {length} bytes exceeds {max_fragment_len(state)} for {state.cipher.name}"
        )
    minimum = _explicit_size(state) + state.cipher.tag_size
    if state.version == uapi.TLS_1_3_VERSION:
        minimum += 1
    if length < minimum:
        raise RecordFormatError(f"fragment of {length} bytes is shorter than the minimum {minimum}")


def seal_record(
    state: DirectionState, seq: int, content_type: int, plaintext: bytes, padding: int = 0
) -> bytes:
    """Protect one record for ``state.version`` (padding only exists in TLS 1.3)."""
    if state.version == uapi.TLS_1_3_VERSION:
        return seal_tls13(state, seq, content_type, plaintext, padding)
    if padding:
        raise RecordFormatError("TLS 1.2 records have no padding")
    return seal_tls12(state, seq, content_type, plaintext)


def open_record(state: DirectionState, seq: int, record: RawRecord | bytes) -> tuple[int, bytes]:
    """Unprotect one record for ``state.version``; returns (content type, content)."""
    raw = parse_record(record) if isinstance(record, bytes | bytearray) else record
    if state.version == uapi.TLS_1_3_VERSION:
        return open_tls13(state, seq, raw)
    return open_tls12(state, seq, raw)


class RecordProtection:
    """One direction of a connection in the reference layer: keys plus the running sequence.

    The AEAD object is built once per key.  ``rekey`` installs new keys (e.g. after KeyUpdate);
    the sequence continues from ``state.seq`` of the new state, normally 0.
    """

    def __init__(self, state: DirectionState) -> None:
        self._state = state
        self._seq = state.seq
        self._aead = state.cipher.aead(state.key)

    @property
    def state(self) -> DirectionState:
        """Current keys, with ``seq`` set to the next record number."""
        return self._state.with_seq(self._seq)

    @property
    def seq(self) -> int:
        """Number of the next record."""
        return self._seq

    def seal(self, content_type: int, plaintext: bytes, padding: int = 0) -> bytes:
        """Protect one record and advance the sequence number."""
        if self._state.version == uapi.TLS_1_3_VERSION:
            out = seal_tls13(self._state, self._seq, content_type, plaintext, padding, self._aead)
        elif padding:
            raise RecordFormatError("TLS 1.2 records have no padding")
        else:
            out = seal_tls12(self._state, self._seq, content_type, plaintext, aead=self._aead)
        self._seq += 1
        return out

    def seal_many(self, content_type: int, data: bytes) -> bytes:
        """Protect ``data`` as as many full-size records as needed (at least one)."""
        chunks = [data[i : i + MAX_PLAINTEXT] for i in range(0, len(data), MAX_PLAINTEXT)]
        return b"".join(self.seal(content_type, chunk) for chunk in chunks or [b""])

    def open(self, record: RawRecord | bytes) -> tuple[int, bytes]:
        """Unprotect one record and advance the sequence number (only on success)."""
        raw = parse_record(record) if isinstance(record, bytes | bytearray) else record
        if self._state.version == uapi.TLS_1_3_VERSION:
            result = open_tls13(self._state, self._seq, raw, self._aead)
        else:
            result = open_tls12(self._state, self._seq, raw, self._aead)
        self._seq += 1
        return result

    def rekey(self, state: DirectionState) -> None:
        """Switch to new keys; the next record number becomes ``state.seq``."""
        self._state = state
        self._seq = state.seq
        self._aead = state.cipher.aead(state.key)

    def key_update(self) -> DirectionState:
        """Advance to the next TLS 1.3 traffic secret (after sending or receiving KeyUpdate)."""
        nxt = self._state.next()
        self.rekey(nxt)
        return nxt


# --- stream framing -------------------------------------------------------------------------


class RecordParser:
    """Splits a byte stream into records; keeps an incomplete tail for the next ``feed``.

    ``versions`` are the accepted header versions (0x0301 shows up on a first ClientHello).
    A header announcing more than ``max_fragment`` bytes is rejected at once.
    """

    def __init__(
        self,
        max_fragment: int = MAX_ANY_FRAGMENT,
        versions: tuple[int, ...] = (LEGACY_RECORD_VERSION,),
    ) -> None:
        self._buf = bytearray()
        self._max = max_fragment
        self._versions = versions

    def feed(self, data: bytes) -> list[RawRecord]:
        """Add bytes; return every record now complete, in order."""
        self._buf += data
        records: list[RawRecord] = []
        while True:
            record = self.next_record()
            if record is None:
                return records
            records.append(record)

    def next_record(self) -> RawRecord | None:
        """Pop one complete record from the buffer, or None if not complete yet."""
        if len(self._buf) < RECORD_HEADER_SIZE:
            return None
        content_type = self._buf[0]
        version = int.from_bytes(self._buf[1:3], "big")
        length = int.from_bytes(self._buf[3:5], "big")
        if version not in self._versions:
            raise RecordFormatError(f"record version {version:#06x} not in accepted versions")
        if content_type not in _CONTENT_TYPES:
            raise RecordFormatError(f"unknown record content type {content_type}")
        if length > self._max:
            raise RecordTooLongError(f"record announces {length} bytes, limit {self._max}")
        end = RECORD_HEADER_SIZE + length
        if len(self._buf) < end:
            return None
        record = RawRecord(content_type, version, bytes(self._buf[RECORD_HEADER_SIZE:end]))
        del self._buf[:end]
        return record

    @property
    def buffered(self) -> bytes:
        """Bytes received but not yet part of a complete record."""
        return bytes(self._buf)

    def take_buffered(self) -> bytes:
        """Return and forget the incomplete tail."""
        out = bytes(self._buf)
        self._buf.clear()
        return out


# --- handshake messages: KeyUpdate ----------------------------------------------------------


def encode_handshake(msg_type: int, body: bytes) -> bytes:
    """A handshake message: type, 24-bit length, body."""
    if not 0 <= msg_type <= 0xFF or len(body) >= 1 << 24:
        raise RecordFormatError("handshake type or length out of range")
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def split_handshake(data: bytes) -> list[tuple[int, bytes]]:
    """Split a record's worth of handshake bytes into (type, body); no partial messages."""
    messages: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < HANDSHAKE_HEADER_SIZE:
            raise RecordFormatError("truncated handshake message header")
        msg_type = data[pos]
        length = int.from_bytes(data[pos + 1 : pos + 4], "big")
        end = pos + HANDSHAKE_HEADER_SIZE + length
        if end > len(data):
            raise RecordFormatError(f"handshake message type {msg_type} truncated")
        messages.append((msg_type, bytes(data[pos + HANDSHAKE_HEADER_SIZE : end])))
        pos = end
    return messages


def encode_key_update(update_requested: bool) -> bytes:
    """KeyUpdate message (RFC 8446 §4.6.3): ``18 00 00 01 0X``."""
    return encode_handshake(HANDSHAKE_KEY_UPDATE, bytes([1 if update_requested else 0]))


def decode_key_update_body(body: bytes) -> bool:
    """``request_update`` of a KeyUpdate body: True if the peer asks us to update too."""
    if len(body) != 1:
        raise RecordFormatError(f"KeyUpdate body must be 1 byte, got {len(body)}")
    if body[0] not in (0, 1):
        raise RecordFormatError(f"KeyUpdate request_update {body[0]} is neither 0 nor 1")
    return body[0] == 1


def decode_key_update(message: bytes) -> bool:
    """Parse a full KeyUpdate handshake message; returns ``update_requested``."""
    messages = split_handshake(message)
    if len(messages) != 1 or messages[0][0] != HANDSHAKE_KEY_UPDATE:
        raise RecordFormatError("not exactly one KeyUpdate handshake message")
    return decode_key_update_body(messages[0][1])


def is_key_update(message: bytes) -> bool:
    """Whether handshake bytes start with a KeyUpdate (the test the kernel itself makes)."""
    return len(message) >= 1 and message[0] == HANDSHAKE_KEY_UPDATE


def encode_alert(level: int, description: int) -> bytes:
    """An alert body (level, description), e.g. ``encode_alert(1, 0)`` for close_notify."""
    return bytes([level, description])
