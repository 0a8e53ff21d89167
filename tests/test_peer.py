"""The traffic peer's framing and keys, on the host (no kTLS needed)."""

import pytest

from ktlskit.peer import (
    HEADER,
    MAGIC,
    RECORD_MAX,
    KeyMaterial,
    Peer,
    PeerError,
    frames,
    payload,
    send_control,
)


def test_frames_fill_whole_records_and_cover_the_total() -> None:
    plan = frames(b"s", 100_000)
    assert sum(n + HEADER.size for _, n in plan) == 100_000
    assert [s for s, _ in plan] == list(range(len(plan)))
    assert all(n + HEADER.size <= RECORD_MAX for _, n in plan)
    assert plan[0][1] + HEADER.size == RECORD_MAX


@pytest.mark.parametrize("total", [16, 17, 16384, 16385, 16399, 16400, 32768, 1 << 20])
def test_frames_add_up_exactly(total: int) -> None:
    plan = frames(b"s", total)
    assert sum(n + HEADER.size for _, n in plan) == total
    assert all(n >= 0 and n + HEADER.size <= RECORD_MAX for _, n in plan)


def test_too_short_a_stream_is_refused() -> None:
    with pytest.raises(PeerError, match="at least 16 bytes"):
        frames(b"s", 15)


def test_payload_is_deterministic_per_seed_and_frame() -> None:
    assert payload(b"a", 1, 100) == payload(b"a", 1, 100)
    assert payload(b"a", 1, 100) != payload(b"a", 2, 100)
    assert payload(b"a", 1, 100) != payload(b"b", 1, 100)


def _checker() -> Peer:
    return Peer.__new__(Peer)


def _frame(seed: bytes, seq: int, n: int) -> bytes:
    return HEADER.pack(MAGIC, seq, n) + payload(seed, seq, n)


def test_frame_checker_accepts_a_split_stream() -> None:
    stream = _frame(b"s", 0, 50) + _frame(b"s", 1, 70)
    buf = bytearray()
    nxt = 0
    for i in range(0, len(stream), 7):
        buf += stream[i : i + 7]
        nxt = _checker()._check_frames(buf, b"s", nxt)
    assert nxt == 2 and not buf


@pytest.mark.parametrize(
    ("stream", "why"),
    [
        (_frame(b"s", 1, 10), "frame 1 arrived where 0 was due"),
        (HEADER.pack(0xDEAD, 0, 1) + b"x", "bad frame magic"),
        (HEADER.pack(MAGIC, 0, 4) + b"xxxx", "payload corrupted"),
    ],
)
def test_frame_checker_rejects(stream: bytes, why: str) -> None:
    with pytest.raises(PeerError, match=why):
        _checker()._check_frames(bytearray(stream), b"s", 0)


def test_generated_keys_fit_each_version_and_cipher() -> None:
    k13 = KeyMaterial.generate("1.3", "aes-gcm-256")
    assert len(bytes.fromhex(k13.c2s)) == 48  # SHA-384 suite
    assert k13.state("c2s").can_rekey
    k12 = KeyMaterial.generate("1.2", "aes-gcm-128")
    st = k12.state("s2c")
    assert len(st.key) == 16 and len(st.iv) == 4 and not st.can_rekey
    assert k13.state("c2s").key != k13.state("s2c").key


def test_control_needs_a_running_peer(tmp_path) -> None:
    with pytest.raises(PeerError, match="no peer control socket"):
        send_control(str(tmp_path / "nope.ctl"), "tx")
    with pytest.raises(PeerError, match="unknown rekey command"):
        send_control(str(tmp_path / "nope.ctl"), "sideways")
