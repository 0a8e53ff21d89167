"""The benchmarks' own machinery on the host: stream, digest, rounds, the userspace transfer.

kTLS transfers, AF_ALG and the offload modes need a kTLS kernel; vmtests/test_bench.py runs
them in a guest.
"""

import hashlib
import socket
import threading
import time
from pathlib import Path

import pytest

from ktlskit import benchstream, offloadbench, trafficbench
from ktlskit.certs import self_signed_pem


def test_expected_digest_matches_the_stream_the_sender_writes() -> None:
    block = benchstream.stream_block()
    n = 3 * benchstream.RECORD + 100
    assert benchstream.expected_digest(n) == hashlib.sha256(block * 3 + block[:100]).hexdigest()


def test_send_all_sends_records_and_rekeys_between_them() -> None:
    sent: list[int] = []
    rekeys: list[int] = []
    n = benchstream.send_all(lambda b: sent.append(len(b)), 5 * benchstream.RECORD + 1,
                             lambda: rekeys.append(len(sent)), 2)
    assert sent == [benchstream.RECORD] * 5 + [1]
    assert rekeys == [2, 4] and n == 2  # none after the last record


def test_ssl_transfer_is_verified_end_to_end(tmp_path: Path) -> None:
    res = trafficbench.transfer("ssl", (1 << 20) + 7, 0, self_signed_pem(tmp_path))
    assert res.verified and res.nbytes == (1 << 20) + 7
    assert res.cipher.startswith("TLS_") and res.rekeys == 0 and res.mbytes_per_s > 0
    assert res.samples[0] == (0.0, 0) and res.samples[-1][1] == res.nbytes
    assert [b for _, b in res.samples] == sorted(b for _, b in res.samples)


def test_the_sender_waits_until_the_receiver_is_set_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow receiver (here 0.4 s between its handshake and its word) gets no byte before it
    is ready: for kTLS, a one-byte transfer could otherwise be closed before the receiver
    attached the TLS ULP (ENOTCONN). Each side writes when it got there into a file (the
    sender is a forked child)."""
    log = tmp_path / "order"
    real_set, real_send_all = trafficbench.ReceiverReady.set, trafficbench.send_all

    def slow_set(ready: trafficbench.ReceiverReady) -> None:
        time.sleep(0.4)
        with log.open("a") as f:
            f.write(f"ready {time.monotonic()}\n")
        real_set(ready)

    def logged_send_all(*args: object, **kwargs: object) -> int:
        with log.open("a") as f:
            f.write(f"send {time.monotonic()}\n")
        return real_send_all(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(trafficbench.ReceiverReady, "set", slow_set)
    monkeypatch.setattr(trafficbench, "send_all", logged_send_all)
    res = trafficbench.transfer("ssl", 1, 0, self_signed_pem(tmp_path))
    assert res.verified and res.nbytes == 1
    events = dict(line.split() for line in log.read_text().splitlines())
    assert float(events["send"]) >= float(events["ready"]), events


def test_a_receiver_that_never_gets_ready_fails_the_sender_in_time() -> None:
    ready = trafficbench.ReceiverReady()
    try:
        t0 = time.monotonic()
        with pytest.raises(trafficbench.BenchError, match="not set up within"):
            ready.wait(0.2)
        assert time.monotonic() - t0 < 5
        ready.set()
        ready.wait(0.2)  # and a word given is taken at once
    finally:
        ready.close()


def test_a_receiver_that_fails_tells_the_sender_at_once(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A receiver that fails after the handshake, where kTLS attaches its ULP: the forked
    sender, already waiting for the word, stops at once, not after waiting out TIMEOUT
    (120 s) for a word that will not come."""
    def refused(ready: trafficbench.ReceiverReady) -> None:
        raise trafficbench.BenchError("ULP refused")

    monkeypatch.setattr(trafficbench.ReceiverReady, "set", refused)
    t0 = time.monotonic()
    with pytest.raises(trafficbench.BenchError, match="ULP refused"):
        trafficbench.transfer("ssl", 1, 0, self_signed_pem(tmp_path))
    assert time.monotonic() - t0 < 30
    ready = trafficbench.ReceiverReady()
    try:
        ready.give_up()
        with pytest.raises(trafficbench.BenchError, match="failed before its end was set up"):
            ready.wait(5)
    finally:
        ready.close()


def test_receive_plain_samples_and_detects_a_short_stream() -> None:
    a, b = socket.socketpair()
    data = benchstream.stream_block() * 40
    t = threading.Thread(target=lambda: (a.sendall(data[:-1]), a.close()))
    t.start()
    res = benchstream.Transfer("plain")
    h = hashlib.sha256()
    benchstream.receive_plain(b.recv, res, h)
    t.join()
    b.close()
    assert res.nbytes == len(data) - 1
    # how many samples depends on how much each recv() returned; the last is the total
    assert res.samples[0] == (0.0, 0) and res.samples[-1][1] == res.nbytes
    with pytest.raises(benchstream.BenchError, match="data lost or corrupted"):
        benchstream.verify(res, len(data), h, benchstream.expected_digest(len(data)))


def test_a_failing_sender_fails_the_transfer() -> None:
    def sender() -> None:
        raise RuntimeError("boom")

    with pytest.raises(benchstream.BenchError, match="sending child failed"):
        benchstream.run_forked(sender, lambda: benchstream.Transfer("x"), timeout=30)


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_cpu_time_of_a_transfer_counts_both_ends_and_not_their_waits() -> None:
    """The sender child burns 0.3 s of CPU, the receiver 0.2 s and then sleeps 0.5 s: about
    0.5 s of CPU, however long the transfer's wall time."""
    def receiver() -> benchstream.Transfer:
        _spin(0.2)
        time.sleep(0.5)
        return benchstream.Transfer("x")

    res = benchstream.run_forked(lambda: _spin(0.3), receiver, timeout=30)
    assert 0.5 <= res.cpu_s < 0.7, res.cpu_s
    assert benchstream.kernel_thread_ns() > 0  # the host's kthreads have run


def test_unknown_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(benchstream.BenchError, match="unknown mode"):
        trafficbench.transfer("quic", 100, 0, tmp_path / "none.pem")


def test_rounds_rotate_so_no_mode_is_always_first() -> None:
    names = ["ssl", "ktls", "ktls-rekey"]
    orders = [benchstream.round_order(names, i) for i in range(3)]
    assert [o[0] for o in orders] == names
    assert all(sorted(o) == sorted(names) for o in orders)


def test_offload_modes_and_their_names() -> None:
    names = [m.name for m in offloadbench.modes(["1.2", "1.3"])]
    assert names == ["tls1.2-offload", "tls1.2-software", "tls1.3-offload", "tls1.3-software"]
    with_rekey = [m.name for m in offloadbench.modes(["1.2", "1.3"], 16)]
    assert with_rekey[-2:] == ["tls1.3-offload+rekey/16", "tls1.3-software+rekey/16"]
    with_deladd = [m.name for m in offloadbench.modes(["1.2", "1.3"], 16, deladd=True)]
    assert with_deladd[-3:] == ["tls1.3-offload+rekey/16", "tls1.3-offload+rekey/16-deladd",
                                "tls1.3-software+rekey/16"]
    timed = [m.name for m in offloadbench.modes(["1.3"], 16, deladd=True) if m.timed]
    assert timed == ["tls1.3-offload+rekey/16", "tls1.3-offload+rekey/16-deladd"]
    assert [m.name for m in offloadbench.modes(["1.2"], 16)] == names[:2]  # 1.2 has no rekey
    assert offloadbench.overhead("1.2") == 29 and offloadbench.overhead("1.3") == 22


def test_traffic_arguments_are_checked_before_any_work() -> None:
    with pytest.raises(SystemExit):
        trafficbench.main(["--rounds", "0"])
