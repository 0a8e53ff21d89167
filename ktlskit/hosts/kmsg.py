"""Splats on a machine reached over SSH: its kernel log, read from ``/dev/kmsg``.

``dmesg`` line counts do not work on a real machine: its log buffer is full and wraps, so
the number of lines stays the same while new ones arrive. ``/dev/kmsg`` numbers every
record; the watch remembers the last number it saw and asks only for newer records (the
filtering runs there, in awk, so a large buffer does not cross the network each time).
"""

from __future__ import annotations

from collections.abc import Callable

from .host import HostError, HostResult, HostSplatError
from .splat import Splat, find_splats
from .watch import SplatWatch

_LAST = "ktlskit-kmsg-last "
# One read(2) of /dev/kmsg returns one record; non-blocking, dd stops at the end of the log.
_READ = ("dd if=/dev/kmsg iflag=nonblock bs=65536 2>/dev/null | awk -v s={mark} '"
         "BEGIN {{ last = -1 }} "
         "/^[0-9]+,[0-9]+,/ {{ split($0, h, /[,;]/); n = h[2] + 0; keep = (n > s); "
         "if (n > last) last = n }} "
         "keep && /^[0-9]/ {{ print }} "
         "END {{ if (last < s) last = s; "
         "print \"" + _LAST + "\" last }}'")

Run = Callable[[str], HostResult]


def parse(text: str) -> tuple[str, int]:
    """(the records as console-style lines, the last sequence number) from the read."""
    lines, last = [], -1
    for line in text.splitlines():
        if line.startswith(_LAST):
            last = int(line[len(_LAST):])
            continue
        head, _, msg = line.partition(";")
        fields = head.split(",")
        if len(fields) < 3 or not fields[2].isdigit():
            continue
        lines.append(f"[{int(fields[2]) / 1e6:12.6f}] {msg}")
    return "\n".join(lines), last


class KmsgWatch(SplatWatch):
    """New splats since the last look; ``run`` runs a shell command on the machine."""

    def __init__(self, run: Run, where: str, settle: float = 1.0) -> None:
        super().__init__(lambda: "", settle,
                         lambda splats, context: HostSplatError(splats, context, where))
        self._run = run
        self._where = where
        self._mark = self._read(-1)[1]

    def _read(self, mark: int) -> tuple[str, int]:
        res = self._run(_READ.format(mark=mark))
        text, last = parse(res.stdout)
        if last < 0:
            raise HostError(f"{self._where}: cannot read the kernel log /dev/kmsg (exit "
                            f"{res.rc}; root needed): {res.stderr.strip()}")
        return text, last

    def _since(self, mark: int) -> tuple[list[Splat], int]:
        text, last = self._read(mark)
        return find_splats(text), last
