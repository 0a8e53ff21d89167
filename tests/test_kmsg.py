"""Splats from /dev/kmsg by record number: only new records count, the filter runs in awk
there (here: on a captured kmsg stream), and a wrapped log does not hide new ones."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ktlskit.hosts.host import HostResult, HostSplatError
from ktlskit.hosts.kmsg import KmsgWatch, parse

OLD = "6,100,5000000,-;virtio_net virtio0 eth0: renamed\n SUBSYSTEM=net\n"
WARN = ("4,101,6000000,-;------------[ cut here ]------------\n"
        "4,102,6000001,-;WARNING: CPU: 0 PID: 77 at net/tls/tls_sw.c:1 tls_sw_x+0x1/0x2\n"
        "4,103,6000002,-;Call Trace:\n"
        "4,104,6000003,-;---[ end trace 0000000000000000 ]---\n")


class Log:
    """A kernel log: what ``dd if=/dev/kmsg`` would print, through the real awk filter."""

    def __init__(self, tmp: Path, text: str) -> None:
        self.file = tmp / "kmsg"
        self.file.write_text(text)

    def run(self, command: str) -> HostResult:
        command = command.replace("dd if=/dev/kmsg iflag=nonblock bs=65536",
                                  f"cat {self.file}")
        res = subprocess.run(["sh", "-c", command], capture_output=True, text=True,
                             timeout=30, check=False)
        return HostResult(command, res.returncode, res.stdout, res.stderr)


def test_parse_makes_console_lines() -> None:
    text, last = parse("6,7,1500000,-;hello\nktlskit-kmsg-last 7\n")
    assert (text, last) == ("[    1.500000] hello", 7)


def test_only_new_records_count(tmp_path: Path) -> None:
    log = Log(tmp_path, OLD + WARN)  # a splat from before the mark
    watch = KmsgWatch(log.run, "root@dut", settle=0)
    assert watch.new_splats() == []
    log.file.write_text(WARN.replace(",10", ",20"))  # wrapped: old records gone, new ones in
    with pytest.raises(HostSplatError, match="on root@dut during x") as err:
        watch.check("during x")
    assert [s.kind for s in err.value.splats] == ["WARNING"]
    assert watch.new_splats() == []


def test_an_unreadable_log_is_an_error(tmp_path: Path) -> None:
    log = Log(tmp_path, "")
    with pytest.raises(Exception, match="cannot read the kernel log"):
        KmsgWatch(log.run, "root@dut")
