"""Keep a guest from outliving its owner.

Run as ``python .../ktlskit/guest/reaper.py [--idle FILE SECONDS] -- ARGV...`` (by its path:
standard library only, so it starts in 50 ms) in a new session. It
starts ARGV in its own process group and kills that whole group

- without ``--idle``: as soon as its stdin (a pipe from the harness) closes: when the harness
  exits, crashes, is killed with SIGKILL or interrupted, the kernel closes the pipe and QEMU
  goes too;
- with ``--idle FILE SECONDS`` (a detached, warm guest that outlives the command that booted
  it): once FILE has not been touched for SECONDS, so a forgotten guest does not run forever.

Either way a reaper that is itself signalled takes the guest with it.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _idle_for(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return float("inf")  # the owner removed it: nobody will use this guest again


def _parse(argv: list[str]) -> tuple[tuple[Path, float] | None, list[str]] | None:
    idle = None
    if argv[:1] == ["--idle"] and len(argv) >= 3:
        idle = (Path(argv[1]), float(argv[2]))
        argv = argv[3:]
    if not argv or argv[0] != "--" or len(argv) < 2:
        return None
    return idle, argv[1:]


def main(argv: list[str]) -> int:
    parsed = _parse(argv)
    if parsed is None:
        print("usage: reaper.py [--idle FILE SECONDS] -- ARGV...",
              file=sys.stderr)
        return 2
    idle, command = parsed
    # A reaper that is itself signalled (kill, pkill, a closed terminal) must take the guest
    # with it: turn those signals into an exit that runs the finally below. Installed before
    # the child exists, so there is no window in which a signal leaves an orphan.
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _exit_on_signal)
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    try:
        while child.poll() is None:
            if idle is not None:
                time.sleep(min(1.0, idle[1]))
                if _idle_for(idle[0]) > idle[1]:
                    print(f"ktlskit reaper: unused for {idle[1]:.0f}s; stopping the guest",
                          file=sys.stderr, flush=True)
                    break
                continue
            ready, _, _ = select.select([sys.stdin], [], [], 0.5)
            if ready and not os.read(sys.stdin.fileno(), 4096):
                break
    finally:
        if child.poll() is None:
            os.killpg(0, signal.SIGKILL)
    return child.returncode or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
