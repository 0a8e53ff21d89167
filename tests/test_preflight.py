"""Bad input fails in well under a second, names the cause and the valid choices, and starts
no work: nothing is fetched, built or booted (the cache stays empty)."""

import io
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from ktlskit import cli

REPO = Path(__file__).resolve().parents[1]


class WorkStarted(BaseException):
    """Raised by the tripwire: not an Exception, so no ``except Exception`` can swallow it."""


@pytest.fixture(autouse=True)
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("KTLSKIT_CACHE", str(cache))
    monkeypatch.setenv("KTLSKIT_PROJECT", str(REPO))
    # A tripwire, not a mock: checking input starts no process. If a check regresses, the
    # command stops at its first process (apt, rsync, make, vng) instead of building a kernel
    # in this temporary cache outside any lock.
    def no_process(self: subprocess.Popen, args: object, *a: object, **kw: object) -> None:
        raise WorkStarted(f"input was accepted and work started: {args!r}")
    monkeypatch.setattr(subprocess.Popen, "__init__", no_process)
    return cache


def _fails_fast(argv: list[str], capsys: pytest.CaptureFixture[str], cache: Path,
                *needles: str) -> str:
    start = time.monotonic()
    try:
        rc = cli.main(argv)
    except WorkStarted as exc:
        pytest.fail(str(exc))
    except SystemExit as exc:  # argparse's own refusals
        rc = int(exc.code or 0)
    took = time.monotonic() - start
    err = capsys.readouterr().err
    assert rc != 0, err
    assert took < 1.0, f"{took:.2f}s"
    for n in needles:
        assert n in err, err
    work = [p.name for p in cache.iterdir()] if cache.exists() else []
    assert not {"src", "build", "trees", "guests", "apt"} & set(work), work
    return err


@pytest.mark.parametrize(("argv", "needles"), [
    (["--cipher", "aes-gcm-129"], ["unknown cipher 'aes-gcm-129'", "aes-gcm-128",
                                   "chacha20-poly1305", "aria-gcm-256"]),
    (["--cipher", "aria-gcm-128"], ["refuses aria-gcm-128 with TLS 1.3", "--tls-version 1.2",
                                    "sm4-ccm"]),
    (["--tls-version", "1.2"], ["TLS 1.2 has no rekey", "--no-rekey"]),
    (["--bytes", "0"], ["--bytes 0", "between 16"]),
    (["--bytes", "-1"], ["--bytes -1"]),
    (["--bytes", str(4 << 30)], ["1 GiB"]),
    (["--rekey-every", "0"], ["--rekey-every 0", "--no-rekey"]),
    (["--rekey-every", "-3"], ["--rekey-every -3"]),
    (["--profile", "nosuch"], ["profile 'nosuch'", "nosuch.config", "default", "debug"]),
    (["--profile", "../etc"], ["not a path"]),
    (["--topology", "loopback", "--offload"], ["topology loopback has none", "netdevsim"]),
    (["--topology", "veth", "--offload"], ["topology veth has none", "netdevsim"]),
    (["--topology", "netdevsim", "--offload", "--tls-version", "1.2", "--no-rekey",
      "--cipher", "chacha20-poly1305"], ["offloads aes-gcm-128, aes-gcm-256 only"]),
    (["--topology", "netdevsim", "--offload", "--cipher", "chacha20-poly1305"],
     ["offloads aes-gcm-128, aes-gcm-256 only"]),
    (["--memory", "2X"], ["--memory '2X'"]),
    (["--cpus", "0"], ["--cpus 0"]),
])
def test_run_refuses_bad_input_before_any_work(argv: list[str], needles: list[str],
                                               capsys: pytest.CaptureFixture[str],
                                               empty_cache: Path) -> None:
    _fails_fast(["run", *argv], capsys, empty_cache, *needles)


def test_unknown_topology_lists_the_choices(capsys: pytest.CaptureFixture[str],
                                            empty_cache: Path) -> None:
    _fails_fast(["run", "--topology", "bridge"], capsys, empty_cache, "loopback", "netdevsim")


def test_kernel_src_that_is_no_kernel(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      empty_cache: Path) -> None:
    missing = tmp_path / "nope"
    _fails_fast(["run", "--kernel-src", str(missing)], capsys, empty_cache,
                "no such file or directory")
    plain_dir = tmp_path / "notakernel"
    plain_dir.mkdir()
    _fails_fast(["run", "--kernel-src", str(plain_dir)], capsys, empty_cache,
                "not a kernel tree (no Makefile)")
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    _fails_fast(["run", "--kernel-src", str(text)], capsys, empty_cache,
                "neither a kernel tree", "nor a tarball")
    tarball = tmp_path / "project.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        data = b"print('hi')\n"
        info = tarfile.TarInfo("project/setup.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    _fails_fast(["run", "--kernel-src", str(tarball)], capsys, empty_cache,
                "not of a kernel tree")


@pytest.mark.parametrize("command", [["exec", "--cpus", "0", "--", "true"],
                                     ["boot", "--memory", "lots"],
                                     ["kselftest", "net/tls", "--profile", "nosuch"],
                                     ["kernel", "build", "--profile", "nosuch"]])
def test_other_commands_check_their_options_first(command: list[str],
                                                  capsys: pytest.CaptureFixture[str],
                                                  empty_cache: Path) -> None:
    _fails_fast(command, capsys, empty_cache)


ENV = "NETIF=eth1\nLOCAL_V4=192.0.2.1\nREMOTE_V4=192.0.2.2\nREMOTE_ARGS=root@192.0.2.2\n"


@pytest.mark.parametrize(("command", "env", "needles"), [
    (["run", "--env", "{dir}/none.config"], None, ["none.config", "No such file"]),
    (["run", "--env", "{env}", "--topology", "veth"], ENV, ["one-machine topology"]),
    (["run", "--topology", "link"], None, ["needs two machines", "--env"]),
    (["run", "--env", "{env}", "--ipv6"], ENV, ["--ipv6 needs LOCAL_V6 and REMOTE_V6"]),
    (["run", "--env", "{env}", "--offload", "--tls-version", "1.3"], ENV,
     ["offloads TLS 1.2 only"]),
    (["run", "--peer", "root@peer"], None, ["NETIF is not set"]),
    (["run", "--env", "{env}", "--dut", "root@dut:0"], ENV, ["--dut", "port 0"]),
    (["run", "--env", "{env}", "--ssh-config", "{dir}/no_ssh_config"], ENV,
     ["KTLSKIT_SSH_CONFIG", "no_ssh_config does not exist"]),
    # the selftest is built only after the machines are known to be nameable
    (["kselftest", "drivers/net/hw", "--env", "{env}", "--dut", "user@"], ENV,
     ["KTLSKIT_DUT (--dut)", "'user@'"]),
    (["kselftest", "drivers/net/hw", "--env", "{env}", "--netif", ""], ENV,
     ["NETIF is not set"]),
    (["lab", "up", "--cpus", "0"], None, ["--cpus 0"]),
    (["lab", "up", "--memory", "1T"], None, ["--memory '1T'"]),
    (["lab", "up", "--idle-timeout", "0"], None, ["--idle-timeout 0"]),
])
def test_machine_options_are_checked_first(command: list[str], env: str | None,
                                           needles: list[str], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str],
                                           empty_cache: Path) -> None:
    env_file = tmp_path / "net.config"
    if env is not None:
        env_file.write_text(env)
    argv = [a.format(dir=tmp_path, env=env_file) for a in command]
    _fails_fast(argv, capsys, empty_cache, *needles)


def test_a_debug_kernel_guest_gets_a_longer_boot_deadline() -> None:
    """The CLI and the pytest plugin give the guest of the debug profile 600 s to answer
    SSH (222 s of it measured), any other profile 240 s."""
    import argparse

    from ktlskit.commands.common import guest_config
    from ktlskit.guest import boot_timeout

    assert boot_timeout("debug") == 600.0 and boot_timeout("default") == 240.0
    args = argparse.Namespace(cpus=2, memory="2G", accel="tcg", profile="debug")
    assert guest_config(args).boot_timeout == 600.0
    assert guest_config(argparse.Namespace(cpus=2, memory="2G", accel="tcg")).boot_timeout == 240
