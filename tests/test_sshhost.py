"""SshHost.open and close with SSH faked at its seam: the session runs each command on this
machine, as sshd would run it on the remote. The rest is real: mktemp, the deployment into
/tmp, the kTLS probe through the deployed Python, the removal after."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ktlskit.hosts import HostError, HostResult, deploy, sshhost
from ktlskit.hosts.local import LocalProcess
from ktlskit.hosts.sshhost import SshHost
from ktlskit.hosts.target import resolve


class LoopbackSession:
    """SshSession's interface, running the commands here; remembers what it was asked."""

    def __init__(self, client: object, where: str = "guest") -> None:
        self.where = where
        self.commands: list[str] = []
        self.pidfiles: list[str] = []
        self.closed = False

    def run(self, command: str, timeout: float, check: bool = True,
            epilogue: str = "") -> HostResult:
        self.commands.append(command)
        return LocalProcess(command, timeout).wait(timeout + 15, check=check)

    def spawn(self, command: str, timeout: float | None = None, epilogue: str = "",
              pidfile: str = "") -> LocalProcess:
        self.commands.append(command)
        self.pidfiles.append(pidfile)
        return LocalProcess(command, timeout)

    def put(self, local: Path, remote: str) -> None:
        shutil.copy(local, remote)

    def get(self, remote: str, local: Path) -> None:
        shutil.copy(remote, local)

    def close(self) -> None:
        self.closed = True


class NoTmp(LoopbackSession):
    def run(self, command: str, timeout: float, check: bool = True,
            epilogue: str = "") -> HostResult:
        if command.startswith("mktemp"):
            self.commands.append(command)
            return HostResult(command, 1, "", "mktemp: No space left on device\n")
        return super().run(command, timeout, check, epilogue)


@pytest.fixture()
def sessions(monkeypatch: pytest.MonkeyPatch) -> list[LoopbackSession]:
    made: list[LoopbackSession] = []

    def session(client: object, where: str = "guest") -> LoopbackSession:
        made.append(LoopbackSession(client, where))
        return made[-1]

    monkeypatch.setattr(sshhost, "_client", lambda target, timeout: None)
    monkeypatch.setattr(sshhost, "SshSession", session)
    return made


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    cfg = tmp_path / "ssh_config"
    cfg.write_text("")
    return cfg


def _made_dir(s: LoopbackSession) -> Path:
    mk = next(c for c in s.commands if c.startswith("mktemp"))
    assert mk == "mktemp -d /tmp/ktlskit-XXXXXXXX"
    removed = [c for c in s.commands if c.startswith("rm -rf /tmp/ktlskit-")]
    assert len(removed) <= 1
    return Path(removed[0].split()[-1]) if removed else Path()


def test_open_deploys_and_probes_then_close_removes_everything(
        sessions: list[LoopbackSession], config: Path) -> None:
    problem = deploy.ktls_problem()  # this kernel's answer, which the remote's must match
    if problem:
        with pytest.raises(deploy.DeployError, match=r"root@127\.0\.0\.1: no kTLS"):
            SshHost.open("root@127.0.0.1", config)
    else:
        with SshHost.open("root@127.0.0.1", config) as host:
            assert host.python == f"{host.tmpdir}/python"
            assert Path(host.tmpdir, "lib", "ktlskit", "__init__.py").is_file()
            assert host.new_splats() == []
    (s,) = sessions
    d = _made_dir(s)
    assert d.name.startswith("ktlskit-") and not d.exists()  # removed, failure or not
    assert s.closed


def test_no_directory_no_deployment(monkeypatch: pytest.MonkeyPatch, config: Path) -> None:
    made: list[LoopbackSession] = []
    monkeypatch.setattr(sshhost, "_client", lambda target, timeout: None)
    monkeypatch.setattr(sshhost, "SshSession",
                        lambda client, where: made.append(NoTmp(client, where)) or made[-1])
    with pytest.raises(HostError, match="cannot make a directory in /tmp: mktemp: No space"):
        SshHost.open("dut", config)
    assert made[0].closed and len(made[0].commands) == 1


def test_close_removes_only_its_own_directory(config: Path) -> None:
    target = resolve("root@dut", config)
    for tmpdir, removed in (("/tmp/ktlskit-0a1b2c3d", True), ("/var/tmp/precious", False),
                            ("", False)):
        s = LoopbackSession(None)
        SshHost(target, s, tmpdir).close()  # type: ignore[arg-type]
        assert any(c.startswith("rm -rf") for c in s.commands) is removed, tmpdir
        assert s.closed


def test_each_spawn_gets_its_own_pidfile_in_the_directory(config: Path) -> None:
    s = LoopbackSession(None)
    host = SshHost(resolve("dut", config), s, "/tmp/ktlskit-0a1b2c3d")  # type: ignore[arg-type]
    for _ in range(2):
        host.spawn("true", timeout=10).wait(10)
    assert s.pidfiles == ["/tmp/ktlskit-0a1b2c3d/spawn-0.pid",
                          "/tmp/ktlskit-0a1b2c3d/spawn-1.pid"]


class _ClosingTransport:
    """A transport whose peer closes the connection as a channel is opened (a guest that
    was told to power off)."""

    def is_active(self) -> bool:
        return True

    def open_session(self, timeout: float) -> None:
        raise EOFError()


class _Client:
    def get_transport(self) -> _ClosingTransport:
        return _ClosingTransport()


def test_a_connection_closed_under_a_new_command_is_a_host_error() -> None:
    from ktlskit.guest.ssh import SshSession

    session = SshSession(_Client(), where="remote peer.lab")  # type: ignore[arg-type]
    with pytest.raises(HostError, match=r"remote peer\.lab failed while starting 'rm -rf /x'"
                                        r": EOFError"):
        session.run("rm -rf /x", timeout=5)
