"""The lab's files, without booting it: its SSH config reaches each guest as a real machine
would be reached (alias, port, key, pinned host key), and taking it down reports the
splats its consoles showed (the session fixture fails on them)."""

from __future__ import annotations

import json
from pathlib import Path

import paramiko
import pytest

from ktlskit import lab, pytest_plugin
from ktlskit.guest.bootdir import BootDir
from ktlskit.hosts.target import resolve

WARN = ("[   20.000001] ------------[ cut here ]------------\n"
        "[   20.000002] WARNING: CPU: 0 PID: 77 at net/tls/tls_sw.c:1 tls_sw_x+0x1/0x2\n"
        "[   20.000003] ---[ end trace 0000000000000000 ]---\n")


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KTLSKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_each_guest_is_reached_by_its_alias_with_its_host_key_pinned(tmp_path: Path) -> None:
    boot = BootDir.create()  # keys and a port, as a boot makes them; nothing boots
    cfg = tmp_path / "ssh_config"
    cfg.write_text(lab.ssh_config({"dut": str(boot.dir)}))
    t = resolve("lab-dut", cfg)
    assert (t.hostname, t.port, t.user, t.strict) == ("127.0.0.1", boot.port, "root", True)
    assert t.key_files == (str(boot.dir / "id_ed25519"),)
    (known,) = t.known_hosts
    keys = paramiko.HostKeys(known).lookup(f"[127.0.0.1]:{boot.port}")  # what paramiko asks
    assert keys is not None and keys["ssh-ed25519"].get_base64() == \
        boot.host_key.public_line.split()[1]


def _lab_with_consoles(cache: Path, consoles: dict[str, str],
                       name: str = "20261130-120000") -> Path:
    root = cache / "labs"
    d = root / name
    boot_dirs = {}
    for role, text in consoles.items():
        (d / role).mkdir(parents=True)
        (d / role / "console.log").write_text(text)
        boot_dirs[role] = str(d / role)
    (d / "lab.json").write_text(json.dumps({"dir": str(d), "boot_dirs": boot_dirs,
                                            "netifs": {"dut": "eth1", "peer": "eth1"}}))
    (root / "current").symlink_to(d.name)
    return root / "current"


def test_down_reports_what_the_consoles_showed(cache: Path) -> None:
    current = _lab_with_consoles(cache, {"dut": "[    1.0] booting\n", "peer": WARN})
    assert lab.current() is None  # no QEMU runs for it
    assert lab.down() == ["peer: WARNING: WARNING: CPU: 0 PID: 77 at net/tls/tls_sw.c:1 "
                          "tls_sw_x+0x1/0x2"]  # role: kind: the splat's first line
    assert not current.exists()
    assert lab.down() == []  # nothing left to take down


def test_the_session_lab_fails_on_a_splat_at_its_end(cache: Path) -> None:
    _lab_with_consoles(cache, {"dut": WARN, "peer": ""})
    with pytest.raises(lab.LabError, match="consoles showed kernel splats: dut: WARNING"):
        pytest_plugin._lab_down()
    _lab_with_consoles(cache, {"dut": "", "peer": ""}, name="20261130-130000")
    pytest_plugin._lab_down()  # a clean lab ends quietly
    assert not (cache / "labs" / "current").exists()


def test_a_splat_a_test_provoked_is_accepted_once(cache: Path) -> None:
    other = WARN.replace("PID: 77", "PID: 78")
    _lab_with_consoles(cache, {"dut": WARN, "peer": WARN + WARN + other})
    title = "WARNING: CPU: 0 PID: 77 at net/tls/tls_sw.c:1  tls_sw_x+0x1/0x2"  # blanks vary
    lab.accept_splat("peer", title)
    assert lab.down() == [  # the dut's is not the one accepted; the peer's second and other are
        "dut: WARNING: WARNING: CPU: 0 PID: 77 at net/tls/tls_sw.c:1 tls_sw_x+0x1/0x2",
        "peer: WARNING: WARNING: CPU: 0 PID: 77 at net/tls/tls_sw.c:1 tls_sw_x+0x1/0x2",
        "peer: WARNING: WARNING: CPU: 0 PID: 78 at net/tls/tls_sw.c:1 tls_sw_x+0x1/0x2"]


def test_accepting_a_splat_needs_a_lab(cache: Path) -> None:
    with pytest.raises(lab.LabError, match="no lab is up"):
        lab.accept_splat("peer", "WARNING: x")
