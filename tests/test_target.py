"""Machines named as [user@]host[:port] or by an SSH config alias."""

from __future__ import annotations

from pathlib import Path

import pytest

from ktlskit.hosts.target import TargetError, resolve


def test_plain_specs(tmp_path: Path) -> None:
    empty = tmp_path / "config"
    empty.write_text("")
    t = resolve("admin@dut.example:2222", empty)
    assert (t.user, t.hostname, t.port, t.strict) == ("admin", "dut.example", 2222, True)
    t = resolve("[2001:db8::5]:22", empty)
    assert (t.user, t.hostname) == ("root", "2001:db8::5")


def test_an_alias_from_the_config(tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    key.write_text("not read here")
    cfg = tmp_path / "config"
    cfg.write_text(f"Host lab-dut\n  HostName 127.0.0.1\n  Port 40001\n  User root\n"
                   f"  IdentityFile {key}\n  UserKnownHostsFile {tmp_path}/kh\n"
                   "  StrictHostKeyChecking yes\n")
    t = resolve("lab-dut", cfg)
    assert (t.hostname, t.port, t.key_files, t.known_hosts) == \
        ("127.0.0.1", 40001, (str(key),), (f"{tmp_path}/kh",))
    assert t.spec == "lab-dut"


@pytest.mark.parametrize(("config", "spec", "error"), [
    ("Host x\n  IdentityFile /nonexistent/key\n", "x", "IdentityFile /nonexistent/key"),
    ("Host x\n  ProxyJump jump\n", "x", "ProxyJump"),
    ("", "user@", "give a machine as"),
    ("", "2001:db8::5", "give a machine as"),  # an IPv6 address needs its brackets
    ("", "root@dut:", "give a machine as"),
    ("", "root@dut:0", "port 0 is not a TCP port"),
    ("", "root@dut:65536", "port 65536 is not a TCP port"),
    ("", "root@dut -p 22", "give a machine as"),  # ssh options are not a machine
    ("Host x\n  Port ssh\n", "x", "Port 'ssh' in .* is not a number"),
    ("Host x\n  Match\n", "x", "SSH config .*: Unparsable line Match"),
])
def test_bad_targets_are_named(tmp_path: Path, config: str, spec: str, error: str) -> None:
    cfg = tmp_path / "config"
    cfg.write_text(config)
    with pytest.raises(TargetError, match=error):
        resolve(spec, cfg)


def test_a_missing_config_given_explicitly(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="does not exist"):
        resolve("x", tmp_path / "none")


def test_what_the_config_says_about_keys_and_host_keys(tmp_path: Path) -> None:
    (tmp_path / "dut.example.key").write_text("not read here")
    cfg = tmp_path / "config"
    cfg.write_text(f"Host dut\n  HostName dut.example\n  User admin\n"
                   f"  IdentityFile {tmp_path}/%h.key\n  UserKnownHostsFile {tmp_path}/kh-%r\n"
                   "  StrictHostKeyChecking accept-new\n  ProxyCommand none\n"
                   "Host relayed\n  ProxyCommand ssh -W %h:%p jump\n")
    t = resolve("dut:2200", cfg)
    assert (t.user, t.port, t.key_files, t.known_hosts, t.strict, t.proxy_command) == \
        ("admin", 2200, (f"{tmp_path}/dut.example.key",), (f"{tmp_path}/kh-admin",), False, "")
    assert resolve("other@dut", cfg).user == "other"  # the command line wins
    assert resolve("relayed", cfg).proxy_command == "ssh -W relayed:22 jump"
    assert resolve("unnamed", cfg).strict  # OpenSSH's "ask": an unknown host key is refused
