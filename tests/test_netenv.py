"""NIPA's env file: the kernel's keys, ktlskit's, quotes and comments; bad input named."""

from __future__ import annotations

from pathlib import Path

import pytest

from ktlskit.hosts.netenv import EnvError, NetEnv

NIPA = """# drivers/net/net.config, as in the kernel's README
NETIF=eth0
LOCAL_V4=192.168.1.1
REMOTE_V4=192.168.1.2
LOCAL_V6="2001:db8:1::1"   # quoted, as the README asks for non-alphanumerics
REMOTE_V6='2001:db8:1::2'
REMOTE_TYPE=ssh
REMOTE_ARGS=root@192.168.1.2
LOCAL_PREFIX_V6="2001:db8:2::0/64"
KTLSKIT_DUT=root@dut.lab
"""


def test_the_kernels_format_and_ktlskits_keys() -> None:
    env = NetEnv.parse(NIPA, "net.config")
    env.check()
    assert (env.netif, env.local_v4, env.remote_v6) == ("eth0", "192.168.1.1", "2001:db8:1::2")
    assert env.remote_target == "root@192.168.1.2"
    assert env.dut == "root@dut.lab"
    assert env.extra == {"LOCAL_PREFIX_V6": "2001:db8:2::0/64"}
    again = NetEnv.parse(env.to_text(), "again")
    assert again.to_text() == env.to_text()


def test_options_override_the_file(tmp_path: Path) -> None:
    f = tmp_path / "net.config"
    f.write_text(NIPA)
    env = NetEnv.load(f).with_options(netif="eth1", remote="lab-peer", dut=None)
    assert (env.netif, env.remote_target, env.dut) == ("eth1", "lab-peer", "root@dut.lab")


@pytest.mark.parametrize(("text", "error"), [
    ("LOCAL_V4=1.2.3.4\nREMOTE_V4=1.2.3.5\nREMOTE_ARGS=x\n", "NETIF is not set"),
    ("NETIF=eth0\nREMOTE_ARGS=x\n", "needs LOCAL_V4 and REMOTE_V4"),
    ("NETIF=eth0\nLOCAL_V4=1.2.3.4\nREMOTE_V4=1.2.3.5\nLOCAL_V6=2001:db8::1\nREMOTE_ARGS=x\n",
     "LOCAL_V6 and REMOTE_V6 go together"),
    ("NETIF=eth0\nLOCAL_V4=1.2.3\nREMOTE_V4=1.2.3.5\nREMOTE_ARGS=x\n", "not an IP address"),
    ("NETIF=eth0\nLOCAL_V4=2001:db8::1\nREMOTE_V4=1.2.3.5\nREMOTE_ARGS=x\n",
     "not an IPv4 address"),
    ("NETIF=eth0\nLOCAL_V4=1.2.3.4\nREMOTE_V4=1.2.3.5\n", "REMOTE_ARGS is not set"),
    ("NETIF eth0\n", r"net.config:1: not KEY=VALUE"),
    ("NETIF=eth0\nLOCAL_V4=1.2.3.4\nREMOTE_V4=1.2.3.5\nREMOTE_TYPE=docker\nREMOTE_ARGS=x\n",
     "REMOTE_TYPE='docker': ssh or netns"),
    ("NETIF=eth0\nLOCAL_V6=2001:db8::1\nREMOTE_V6=192.0.2.2\nREMOTE_ARGS=x\n",
     "REMOTE_V6=192.0.2.2 is not an IPv6 address"),
    ("NETIF=eth0\nLOCAL_V4=1.2.3.4\nREMOTE_V4=1.2.3.5\nREMOTE_ARGS=x\n"
     "KTLSKIT_SSH_CONFIG=/nonexistent/ssh_config\n", "KTLSKIT_SSH_CONFIG /nonexistent"),
    # the machines ktlskit logs into are checked before any connection (or build)
    ("NETIF=eth0\nLOCAL_V4=1.2.3.4\nREMOTE_V4=1.2.3.5\nREMOTE_ARGS=-p 22 root@peer\n",
     "net.config: REMOTE_ARGS: '-p 22 root@peer': give a machine as"),
    ("NETIF=eth0\nLOCAL_V4=1.2.3.4\nREMOTE_V4=1.2.3.5\nREMOTE_ARGS=x\n"
     "KTLSKIT_DUT=root@dut:99999\n", r"KTLSKIT_DUT \(--dut\): root@dut:99999: port 99999"),
    ("NETIF=eth0\nLOCAL_V4=1.2.3.4\nREMOTE_V4=1.2.3.5\nREMOTE_ARGS=-p 22 x\n"
     "KTLSKIT_REMOTE=user@\n", r"KTLSKIT_REMOTE \(--peer\): 'user@'"),
])
def test_bad_env_is_named(text: str, error: str) -> None:
    with pytest.raises(EnvError, match=error):
        NetEnv.parse(text, "net.config").check()


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(EnvError, match=r"nope\.config"):
        NetEnv.load(tmp_path / "nope.config")


def test_a_namespace_remote_is_no_ssh_target() -> None:
    env = NetEnv.parse("NETIF=eth0\nLOCAL_V4=192.0.2.1\nREMOTE_V4=192.0.2.2\n"
                       "REMOTE_TYPE=netns\nREMOTE_ARGS=peer ns\n", "net.config")
    env.check()  # "peer ns" is a namespace name here, never resolved as a machine
    assert env.remote_args == "peer ns"


def test_remote_args_stay_the_duts_when_ktlskit_has_its_own_way(tmp_path: Path) -> None:
    cfg = tmp_path / "ssh_config"
    cfg.write_text("Host lab-peer\n  HostName 127.0.0.1\n  Port 40002\n")
    env = NetEnv.parse(f"NETIF=eth0\nLOCAL_V4=192.0.2.1\nREMOTE_V4=192.0.2.2\n"
                       f"REMOTE_ARGS=-i /root/k root@192.0.2.2\nKTLSKIT_REMOTE=lab-peer\n"
                       f"KTLSKIT_SSH_CONFIG={cfg}\n", "lab.config")
    env.check()  # REMOTE_ARGS is how the DUT logs in: its syntax is ssh's, not checked here
    assert env.remote_target == "lab-peer"
