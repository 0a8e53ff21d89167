"""One verified one-way stream, timed: the transfer every ktlskit benchmark is made of.

The sender (a forked child, so sender and receiver never share a GIL) writes N bytes of one
incompressible 16 KiB block repeated, one ``send`` per record, optionally sending a TLS 1.3
KeyUpdate every R records. The receiver hashes everything it gets and compares the SHA-256
with the digest computed before the clock starts: a transfer that lost or changed a byte
raises :class:`BenchError`. Throughput is the receiver's first-byte-to-last-byte rate.

The receiver also keeps what a later plot needs: (seconds, bytes) samples over the transfer
and the time of each KeyUpdate, the stall after each (KeyUpdate read -> next application
data read, which includes installing the next RX key) and the median gap between two
application data reads without a KeyUpdate, the baseline a stall is compared with.
"""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import KtlskitError
from .ksocket import KtlsSocket
from .records import ContentType

RECORD = 16384
TIMEOUT = 120.0  # seconds any single socket operation may block
SAMPLE_EVERY = 256 << 10  # bytes between two (time, bytes) samples


class BenchError(KtlskitError):
    """A benchmark transfer failed (short or corrupted stream, child error, timeout)."""


@dataclass
class Transfer:
    """One timed, verified transfer (times in seconds since the first byte arrived)."""

    mode: str
    cipher: str = ""
    nbytes: int = 0
    seconds: float = 0.0
    mbytes_per_s: float = 0.0
    rekeys: int = 0
    stalls_ms: list[float] = field(default_factory=list)
    gap_ms: float = 0.0  # median gap between two application data reads
    samples: list[tuple[float, int]] = field(default_factory=list)
    key_updates: list[float] = field(default_factory=list)
    verified: bool = False
    #: CPU time the transfer took (``run_forked``): sender and receiver, and the kernel's own
    #: threads meanwhile (softirqs, workqueues); per byte, it leaves out waits (timers, a
    #: zero window) that MB/s include.
    cpu_s: float = 0.0
    mbytes_per_cpu_s: float = 0.0

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def stream_block() -> bytes:
    """One record's worth of incompressible data, sent repeatedly."""
    return hashlib.shake_128(b"ktlskit-bench").digest(RECORD)


def expected_digest(nbytes: int) -> str:
    block = stream_block()
    h = hashlib.sha256()
    full, tail = divmod(nbytes, RECORD)
    for _ in range(full):
        h.update(block)
    h.update(block[:tail])
    return h.hexdigest()


# ---- sender -----------------------------------------------------------------------------------

def send_all(send: Callable[[bytes], object], nbytes: int,
             rekey: Callable[[], object] | None = None, every: int = 0) -> int:
    """``nbytes`` in record-sized sends; ``rekey()`` after every ``every`` records (not after
    the last). Returns the number of rekeys."""
    block = stream_block()
    left, records, rekeys = nbytes, 0, 0
    while left:
        n = min(left, RECORD)
        send(block[:n])
        left -= n
        records += 1
        if rekey and every and records % every == 0 and left:
            rekey()
            rekeys += 1
    return rekeys


def run_forked(sender: Callable[[], None], receiver: Callable[[], Transfer],
               timeout: float) -> Transfer:
    """Run ``sender`` in a forked child and ``receiver`` here; the child is reaped (killed
    after ``timeout`` seconds) and a failed child fails the transfer. ``cpu_s`` of the result:
    the child's CPU time, this thread's during ``receiver``, and the kernel threads' meanwhile
    (each a task's precise run time, not tick samples)."""
    kthreads = kernel_thread_ns()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            sender()
        except BaseException as exc:  # the child must never return into the caller
            print(f"sender: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            code = 1
        os._exit(code)
    mine = time.thread_time_ns()
    try:
        res = receiver()
    finally:
        mine = time.thread_time_ns() - mine
        status, child = _reap(pid, timeout)
    if status != 0:
        raise BenchError(f"{res.mode}: the sending child failed (wait status {status:#x})")
    res.cpu_s = round(child.ru_utime + child.ru_stime + (mine + kernel_thread_ns() - kthreads)
                      / 1e9, 6)
    return res


def _reap(pid: int, timeout: float) -> tuple[int, resource.struct_rusage]:
    deadline = time.monotonic() + timeout
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, usage
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            return status, usage
        time.sleep(0.01)


PF_KTHREAD = 0x00200000
CPUCLOCK_SCHED = 2


def process_cpu_ns(pid: int) -> int:
    """A process's CPU time in ns from its CPU-time clock (``clock_getcpuclockid()``): the
    scheduler's precise run time of all its threads, not tick samples."""
    return time.clock_gettime_ns(((~pid) << 3) | CPUCLOCK_SCHED)


def kernel_thread_ns() -> int:
    """Summed CPU time (ns) of the kernel's threads now (ksoftirqd, kworkers, ...)."""
    total = 0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            flags = int((d / "stat").read_text().rsplit(")", 1)[1].split()[6])
            if flags & PF_KTHREAD:
                total += process_cpu_ns(int(d.name))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return total


# ---- receiver ---------------------------------------------------------------------------------

class _Clock:
    """First-byte clock, progress samples, inter-read gaps."""

    def __init__(self, res: Transfer) -> None:
        self.res = res
        self.start: float | None = None
        self.last: float | None = None
        self.next_sample = SAMPLE_EVERY
        self.gaps: list[float] = []

    def data(self, now: float, n: int, after_key_update: bool) -> None:
        if self.start is None:
            self.start = now
            self.res.samples.append((0.0, 0))
        elif self.last is not None and not after_key_update:
            self.gaps.append(now - self.last)
        self.last = now
        self.res.nbytes += n
        if self.res.nbytes >= self.next_sample:
            self.res.samples.append((round(now - self.start, 6), self.res.nbytes))
            self.next_sample = self.res.nbytes + SAMPLE_EVERY

    def since_start(self, now: float) -> float:
        return round(now - self.start, 6) if self.start is not None else 0.0

    def finish(self) -> None:
        if self.start is not None and self.last is not None:
            self.res.seconds = self.last - self.start
            if self.res.samples[-1][1] != self.res.nbytes:
                self.res.samples.append((round(self.res.seconds, 6), self.res.nbytes))
        if self.gaps:
            self.res.gap_ms = round(statistics.median(self.gaps) * 1000, 4)


def receive_plain(recv: Callable[[int], bytes], res: Transfer, h: hashlib._Hash) -> None:
    """Read until EOF from a byte stream (the userspace TLS socket)."""
    clock = _Clock(res)
    while True:
        data = recv(1 << 20)
        if not data:
            break
        clock.data(time.monotonic(), len(data), False)
        h.update(data)
    clock.finish()


def receive_ktls(ks: KtlsSocket, res: Transfer, h: hashlib._Hash,
                 trace: list[tuple[int, int]] | None = None) -> None:
    """Read records until EOF from a kTLS socket, installing the next RX key on KeyUpdate;
    ``trace`` gets (``time.monotonic_ns()``, bytes so far) after each application data read."""
    clock = _Clock(res)
    ku_at: float | None = None
    while True:
        ctype, data = ks.recv_record(RECORD + 256, auto_key_update=False)
        now_ns = time.monotonic_ns()
        now = now_ns / 1e9
        if ctype == ContentType.HANDSHAKE:
            ku_at = now
            if ks.handle_key_update(data, answer=False):
                res.rekeys += 1
                res.key_updates.append(clock.since_start(now))
            continue
        if ctype != ContentType.APPLICATION_DATA:
            if not data:
                break
            raise BenchError(f"unexpected record type {ctype}")
        clock.data(now, len(data), ku_at is not None)
        if trace is not None:
            trace.append((now_ns, res.nbytes))
        if ku_at is not None:
            res.stalls_ms.append(round((now - ku_at) * 1000, 4))
            ku_at = None
        h.update(data)
    clock.finish()


def verify(res: Transfer, nbytes: int, h: hashlib._Hash, want: str) -> Transfer:
    """Check length and digest, round the figures; raises BenchError on any difference."""
    res.verified = res.nbytes == nbytes and h.hexdigest() == want
    if not res.verified:
        raise BenchError(f"{res.mode}: received {res.nbytes} of {nbytes} bytes (and "
                         f"{res.rekeys} KeyUpdates), or the stream's SHA-256 differs: data "
                         "lost or corrupted")
    res.seconds = round(res.seconds, 4)
    res.mbytes_per_s = round(nbytes / res.seconds / 1e6, 3) if res.seconds else 0.0
    res.mbytes_per_cpu_s = round(nbytes / res.cpu_s / 1e6, 3) if res.cpu_s else 0.0
    return res


# ---- rounds -----------------------------------------------------------------------------------

def round_order(names: list[str], index: int) -> list[str]:
    """Round ``index`` runs every name once, starting one further each round, so no mode is
    always first (cold caches) or always after the same neighbour."""
    k = index % len(names) if names else 0
    return names[k:] + names[:k]


def progress(msg: str) -> None:
    """A progress line on stderr (the host relays it); stdout carries only the result."""
    print(f"bench: {msg}", file=sys.stderr, flush=True)
