"""Keep a guest from outliving the harness.

Run as ``python -m ktlskit.guest.reaper -- ARGV...`` in a new session with a
pipe on stdin. It starts ARGV in its own process group and kills that whole
group as soon as the pipe closes: when the harness exits, crashes, is killed
with SIGKILL or interrupted, the kernel closes the pipe and QEMU goes too.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "--" or len(argv) < 2:
        print("usage: python -m ktlskit.guest.reaper -- ARGV...", file=sys.stderr)
        return 2
    # A reaper that is itself signalled (kill, pkill, a closed terminal) must take the guest
    # with it: turn those signals into an exit that runs the finally below. Installed before
    # the child exists, so there is no window in which a signal leaves an orphan.
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _exit_on_signal)
    child = subprocess.Popen(argv[1:], stdin=subprocess.DEVNULL)
    try:
        while child.poll() is None:
            ready, _, _ = select.select([sys.stdin], [], [], 0.5)
            if ready and not os.read(sys.stdin.fileno(), 4096):
                break
    finally:
        if child.poll() is None:
            os.killpg(0, signal.SIGKILL)
    return child.returncode or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
