"""Warm guests: one guest per built kernel that stays up between commands.

``ktlskit boot --detach`` starts one (detached: it outlives the command and powers off after
an idle time). ``guest_for()`` — used by ``ktlskit exec``, ``ktlskit run``, ``retest`` and the
pytest plugin — takes it while it runs the current build of that kernel (same bzImage content),
has the requested CPUs and memory, and nobody else holds it; otherwise it boots a private guest.
A warm guest whose kernel was rebuilt is stopped and replaced by a fresh warm one; one that
printed a kernel splat is retired (its kernel state is no longer trusted).

The registry is a JSON file per build directory in ``CACHE/guests/``; a flock on it
serialises replacing, a flock in the guest's boot directory marks it in use.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import IO

from .. import paths
from ..progress import say
from .bootdir import qemu_running
from .guest import Guest, GuestConfig
from .watch import GuestError

IDLE_TIMEOUT = 3600.0
#: In a warm guest's boot directory until a command first takes it: its 9p caches then hold
#: only what its own boot read (the call server's imports included), so the first take needs
#: no cache drop.
FRESH = "fresh"


@dataclass(frozen=True)
class WarmRecord:
    boot_dir: str
    bzimage: str
    image: str  # sha256 of the bzImage the guest booted
    cpus: int
    memory: str
    idle: float

    def fits(self, cfg: GuestConfig) -> bool:
        return (self.cpus, self.memory) == (cfg.cpus, cfg.memory) and cfg.accel == "auto"


def image_id(bzimage: Path) -> str:
    return hashlib.sha256(bzimage.read_bytes()).hexdigest()


def _registry(bzimage: Path) -> Path:
    d = paths.cache_dir() / "guests"
    d.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(str(bzimage.resolve()).encode()).hexdigest()[:12]
    return d / f"warm-{key}.json"


@contextmanager
def _registry_lock(bzimage: Path) -> Iterator[None]:
    with open(_registry(bzimage).with_suffix(".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def find(bzimage: Path) -> WarmRecord | None:
    """The warm guest registered for this kernel, if its QEMU still runs."""
    f = _registry(bzimage)
    try:
        rec = WarmRecord(**json.loads(f.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if not qemu_running(Path(rec.boot_dir)):
        f.unlink(missing_ok=True)
        return None
    return rec


def _start(bzimage: Path, cfg: GuestConfig, idle: float) -> WarmRecord:
    guest = Guest.start(bzimage, replace(cfg, serve_calls=True), idle=idle)
    guest.detach()
    (guest.boot_dir / FRESH).touch()
    rec = WarmRecord(str(guest.boot_dir), str(bzimage), image_id(bzimage), cfg.cpus,
                     cfg.memory, idle)
    _registry(bzimage).write_text(json.dumps(asdict(rec), indent=1) + "\n")
    say(f"warm guest up: {guest.boot_dir} (powers off after {idle:.0f}s unused)")
    return rec


def _stop(bzimage: Path, rec: WarmRecord, why: str) -> None:
    say(f"stopping the warm guest {rec.boot_dir}: {why}")
    with suppress(GuestError, OSError):
        Guest.attach(Path(rec.boot_dir)).stop()
    _registry(bzimage).unlink(missing_ok=True)


def _discard(bzimage: Path, rec: WarmRecord, why: str) -> None:
    """Kill a warm guest that is being replaced: its kernel is not the one wanted, so its
    power-off has nothing to tell (attaching and a polite power-off took ~1 s of every
    edit-test round). Its splats were checked when its last user released it."""
    say(f"discarding the warm guest {rec.boot_dir}: {why}")
    with suppress(GuestError, OSError, ValueError):
        Guest.kill_at(Path(rec.boot_dir))
    _registry(bzimage).unlink(missing_ok=True)


def start(bzimage: Path, cfg: GuestConfig, idle: float = IDLE_TIMEOUT) -> WarmRecord:
    """The warm guest for this kernel: the running one if it is current, else a new one."""
    with _registry_lock(bzimage):
        rec = find(bzimage)
        if rec is not None and rec.image == image_id(bzimage) and rec.fits(cfg):
            return rec
        if rec is not None:
            _discard(bzimage, rec, "replaced (kernel rebuilt or other CPUs/memory)")
        return _start(bzimage, cfg, idle)


def stop(bzimage: Path) -> bool:
    """Stop this kernel's warm guest; False when there was none."""
    with _registry_lock(bzimage):
        rec = find(bzimage)
        if rec is None:
            return False
        _stop(bzimage, rec, "asked to")
        return True


def _try_hold(boot_dir: Path) -> IO[str] | None:
    f = open(boot_dir / "use.lock", "w")  # noqa: SIM115 - held past this function
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    return f


def _current(bzimage: Path, cfg: GuestConfig) -> WarmRecord | None:
    """The warm guest to use for this kernel, replacing a stale one; None: boot privately."""
    with _registry_lock(bzimage):
        rec = find(bzimage)
        if rec is None:
            return None
        if not rec.fits(cfg):
            say(f"warm guest {rec.boot_dir} has {rec.cpus} CPUs/{rec.memory}; booting a "
                "private guest for this command")
            return None
        if rec.image != image_id(bzimage):
            _discard(bzimage, rec, "its kernel is not the current build")
            return _start(bzimage, cfg, rec.idle)  # taken at once, below
        return rec


@contextmanager
def guest_for(bzimage: Path, cfg: GuestConfig, *, reuse: bool = True) -> Iterator[Guest]:
    """A guest running ``bzimage``: the warm one when it can be used, else a private boot."""
    rec = _current(bzimage, cfg) if reuse else None
    hold = _try_hold(Path(rec.boot_dir)) if rec is not None else None
    if rec is not None and hold is None:
        say(f"the warm guest {rec.boot_dir} is in use; booting a private guest")
    if rec is None or hold is None:
        with Guest.boot(bzimage, cfg) as g:
            yield g
        return
    try:
        guest = Guest.attach(Path(rec.boot_dir))
        say(f"using the warm guest {rec.boot_dir}")
        guest.touch()
        fresh = Path(rec.boot_dir) / FRESH
        if fresh.exists():
            fresh.unlink()
        else:
            # Its 9p root caches what it read (vng.ROOT_FLAGS): forget it, so files the host
            # changed since (code, a rebuilt selftest) are read afresh.
            guest.run("sync; echo 3 > /proc/sys/vm/drop_caches", timeout=60)
        try:
            yield guest
        finally:
            _release(bzimage, guest)
    finally:
        hold.close()


def _release(bzimage: Path, guest: Guest) -> None:
    """Hand the guest back; a splat not reported yet is raised, as at a private shutdown."""
    guest.touch()
    try:
        guest.check("after use")
    finally:
        if guest.splats_seen:
            say("the warm guest printed a kernel splat: retiring it")
            guest.stop()
            _registry(bzimage).unlink(missing_ok=True)
        else:
            guest.detach()
