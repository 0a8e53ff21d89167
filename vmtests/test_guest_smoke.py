"""The guest pipeline itself: the right kernel, SSH control, timeouts, files."""

import time
from pathlib import Path

import pytest

from ktlskit.hosts import Host, HostCommandError, HostTimeoutError

TLS_STAT_NAMES = ("TlsCurrTxSw", "TlsCurrRxSw", "TlsCurrTxDevice", "TlsCurrRxDevice", "TlsTxSw",
                  "TlsRxSw", "TlsTxDevice", "TlsRxDevice", "TlsDecryptError",
                  "TlsRxDeviceResync", "TlsDecryptRetry", "TlsRxNoPadViolation", "TlsRxRekeyOk",
                  "TlsRxRekeyError", "TlsTxRekeyOk", "TlsTxRekeyError", "TlsRxRekeyReceived")

ULP_PROBE = """{python} - <<'PY'
import socket
srv = socket.create_server(("127.0.0.1", 0))
c = socket.create_connection(srv.getsockname())
c.setsockopt(socket.IPPROTO_TCP, 31, b"tls")
print(c.getsockopt(socket.IPPROTO_TCP, 31, 16).rstrip(b"\\0").decode())
PY"""


def test_runs_the_kernel_ktlskit_built(guest: Host) -> None:
    version = guest.run("cat /proc/version", timeout=10).stdout
    assert "ktlskit@ktlskit" in version, version


def test_tls_stat_has_every_counter(guest: Host) -> None:
    text = guest.run("cat /proc/net/tls_stat", timeout=10).stdout
    names = [line.split()[0] for line in text.splitlines() if line.strip()]
    for name in TLS_STAT_NAMES:
        assert name in names


def test_tls_ulp_attaches(guest: Host) -> None:
    assert guest.run(ULP_PROBE.format(python=guest.python), timeout=60).stdout.strip() == "tls"


def test_nonzero_exit_is_a_typed_error(guest: Host) -> None:
    with pytest.raises(HostCommandError) as err:
        guest.run("echo to-stderr >&2; exit 3", timeout=10)
    assert err.value.result.rc == 3
    assert "to-stderr" in err.value.result.stderr
    assert guest.run("exit 4", timeout=10, check=False).rc == 4


def test_command_timeout_is_enforced(guest: Host) -> None:
    start = time.monotonic()
    res = guest.run("sleep 60", timeout=2, check=False)
    assert time.monotonic() - start < 30
    assert res.rc in (124, 137), "coreutils timeout must have killed the command"
    proc = guest.spawn("sleep 60")
    with pytest.raises(HostTimeoutError):
        proc.wait(timeout=1)
    proc.kill()


def test_spawn_collects_output(guest: Host) -> None:
    proc = guest.spawn("for i in 1 2 3; do echo line$i; sleep 0.2; done", timeout=30)
    res = proc.wait(timeout=30)
    assert res.stdout.split() == ["line1", "line2", "line3"]


def test_files_go_both_ways(guest: Host, tmp_path: Path) -> None:
    src = tmp_path / "payload.bin"
    data = bytes(range(256)) * 1000
    src.write_bytes(data)
    guest.put(src, "/tmp/payload.bin")
    assert guest.run("sha256sum /tmp/payload.bin", timeout=10).stdout.split()[0] == \
        __import__("hashlib").sha256(data).hexdigest()
    back = tmp_path / "back.bin"
    guest.get("/tmp/payload.bin", back)
    assert back.read_bytes() == data
