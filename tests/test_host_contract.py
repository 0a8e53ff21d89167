"""The Host contract: every kind of host offers all of it, with the contract's parameters, and
this machine (LocalHost) behaves as the contract says: deadlines, typed errors, a private
temporary directory, files in and out."""

from __future__ import annotations

import inspect
import os
import stat
from pathlib import Path

import pytest

from ktlskit.guest import Guest
from ktlskit.guest.bootdir import BootDir
from ktlskit.guest.ssh import SshProcess
from ktlskit.hosts import Host, HostCommandError, HostTimeoutError, Process
from ktlskit.hosts.local import LocalHost, LocalProcess
from ktlskit.hosts.sshhost import SshHost


def _methods(proto: type) -> dict[str, object]:
    return {n: v for n, v in vars(proto).items()
            if not n.startswith("_") and (inspect.isfunction(v) or isinstance(v, property))}


def _params(fn: object) -> list[tuple[str, object]]:
    sig = inspect.signature(fn)  # type: ignore[arg-type]
    return [(p.name, p.default) for p in sig.parameters.values() if p.name != "self"]


@pytest.mark.parametrize(("impl", "proto"), [
    (LocalHost, Host), (SshHost, Host), (Guest, Host),
    (LocalProcess, Process), (SshProcess, Process),
])
def test_every_kind_offers_the_whole_contract(impl: type, proto: type) -> None:
    for name, member in _methods(proto).items():
        got = inspect.getattr_static(impl, name, None)
        assert got is not None, f"{impl.__name__} lacks {name}"
        if isinstance(member, property):
            assert isinstance(got, property), f"{impl.__name__}.{name} is not a property"
            continue
        assert _params(got) == _params(member), f"{impl.__name__}.{name}"


def test_every_host_has_a_name_and_a_python(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KTLSKIT_CACHE", str(tmp_path / "cache"))
    boot = BootDir.create()  # keys and a port only: nothing boots
    local = LocalHost()
    try:
        for host in (local, Guest(boot, "tcg")):
            assert set(Host.__annotations__) == {"name", "python"}
            assert host.name and Path(host.python).is_absolute(), host
        assert local.name == "local"
        assert Guest(boot, "kvm").name == f"guest 127.0.0.1:{boot.port} (kvm)"
    finally:
        local.close()


@pytest.fixture()
def local(local_host: LocalHost) -> LocalHost:
    return local_host


def test_the_temporary_directory_is_private_and_removed(local: LocalHost) -> None:
    d = Path(local.tmpdir)
    assert local.tmpdir == str(d)  # made once
    assert stat.S_IMODE(d.stat().st_mode) == 0o700 and d.name.startswith("ktlskit-")
    (d / "keys.json").write_text("{}")
    local.close()
    assert not d.exists()


def test_files_go_in_and_come_back(local: LocalHost, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(4096))
    local.put(src, f"{local.tmpdir}/there.bin")
    local.get(f"{local.tmpdir}/there.bin", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()


def test_run_checks_and_keeps_its_deadline(local: LocalHost) -> None:
    assert local.run("echo out; echo err >&2").stdout == "out\n"
    res = local.run("echo why >&2; exit 7", check=False)
    assert (res.rc, res.stderr) == (7, "why\n")
    with pytest.raises(HostCommandError, match=r"local command failed \(exit 7\)") as exc:
        local.run("exit 7")
    assert exc.value.result.rc == 7
    # coreutils timeout ends the command there; rc 124 is timeout's own
    assert local.run("sleep 30", timeout=1, check=False).rc == 124


def test_a_spawned_command_can_be_waited_for_or_killed(local: LocalHost) -> None:
    p = local.spawn("sleep 30", timeout=60)
    with pytest.raises(HostTimeoutError, match="still running"):
        p.wait(0.2)
    p.kill()
    assert not p.running()
