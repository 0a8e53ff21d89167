"""Safety on machines that matter, checked on recorded outputs of real commands
(``ip -j addr show`` and ``ethtool -k`` of a virtio_net machine): only the named interface
and addresses are touched, the interface carrying SSH is never reconfigured, and every
change is undone, also when the run is interrupted."""

from __future__ import annotations

from pathlib import Path

import pytest

from ktlskit import link
from ktlskit.hosts.host import HostCommandError, HostResult
from ktlskit.hosts.netenv import NetEnv

FIXTURES = Path(__file__).parent / "fixtures"
# the recorded machine: eth0 UP with 192.0.2.2/24 and fd00::2/64; ifb0, ifb1 DOWN, no address


class RecordedMachine:
    """A machine whose commands answer with recorded outputs; changes are only logged."""

    python = "python3"
    tmpdir = "/tmp/x"

    def __init__(self, name: str, ssh_from: str = "", sockets: str = "") -> None:
        self.name = name
        self.ssh_from = ssh_from
        self.sockets = sockets  # ss -Htnp state established
        self.commands: list[str] = []

    def run(self, command: str, timeout: float = 60, check: bool = True) -> HostResult:
        self.commands.append(command)
        out = ""
        if command.endswith("ip -j addr show"):
            out = (FIXTURES / "ip-addr-j.json").read_text()
        elif command == "printenv SSH_CONNECTION":
            out = f"{self.ssh_from} 22\n" if self.ssh_from else ""
        elif command == "ss -Htnp state established":
            out = self.sockets
        elif command.startswith("ethtool -k"):
            out = (FIXTURES / "ethtool-k-virtio.txt").read_text()
        elif command.startswith("ethtool -i"):
            out = "driver: virtio_net\n"
        res = HostResult(command, 0, out, "")
        if check and res.rc:
            raise HostCommandError(res)
        return res

    def changes(self) -> list[str]:
        return [c for c in self.commands if c.startswith(("ip addr ", "ip link set",
                                                          "ethtool -K"))]


def _env(**kw: str) -> NetEnv:
    base = {"netif": "ifb0", "local_v4": "198.51.100.1", "remote_v4": "198.51.100.2",
            "remote_args": "peer", "remote_netif": "ifb1", "source": "net.config"}
    return NetEnv(**{**base, **kw})


def test_what_is_missing_is_added_and_undone() -> None:
    dut, peer = RecordedMachine("dut", "203.0.113.9 50000 192.0.2.2"), RecordedMachine("peer")
    with link.prepared(_env(), dut, peer) as lk:
        assert (lk.dut.ifname, lk.remote.ifname, lk.dut.driver) == ("ifb0", "ifb1", "virtio_net")
        assert dut.changes() == ["ip link set dev ifb0 up",
                                 "ip addr add 198.51.100.1/24 dev ifb0"]
    assert dut.changes()[2:] == ["ip addr del 198.51.100.1/24 dev ifb0",
                                 "ip link set dev ifb0 down"]
    assert peer.changes()[-1] == "ip link set dev ifb1 down"


def test_undone_after_an_interrupt() -> None:
    dut, peer = RecordedMachine("dut"), RecordedMachine("peer")
    with pytest.raises(KeyboardInterrupt), link.prepared(_env(), dut, peer):
        raise KeyboardInterrupt
    assert dut.changes()[-1] == "ip link set dev ifb0 down"


def test_an_address_already_there_is_left_alone() -> None:
    dut = RecordedMachine("dut", "203.0.113.9 50000 192.0.2.2")
    env = _env(netif="eth0", local_v4="192.0.2.2")
    with link.prepared(env, dut, RecordedMachine("peer")):
        pass
    assert dut.changes() == []  # eth0 is up and has it: nothing to do, even though SSH uses it


def test_the_ssh_interface_is_never_reconfigured() -> None:
    dut = RecordedMachine("dut", "203.0.113.9 50000 192.0.2.2")  # SSH arrives on eth0
    with pytest.raises(link.LinkError, match=r"refusing to reconfigure eth0 on dut: it "
                                             r"carries an SSH session \(add 198\.51\.100\.1"), \
            link.prepared(_env(netif="eth0"), dut, RecordedMachine("peer")):
        pytest.fail("taken")
    assert dut.changes() == []


def test_an_address_on_another_interface_is_refused() -> None:
    with pytest.raises(link.LinkError, match=r"192\.0\.2\.2 is on eth0 of the DUT, not ifb0"), \
            link.prepared(_env(local_v4="192.0.2.2"), RecordedMachine("d"), RecordedMachine("p")):
        pytest.fail("taken")


def test_the_remote_interface_is_found_by_address_or_named() -> None:
    env = _env(remote_netif="", remote_v4="192.0.2.2")
    with link.prepared(env, RecordedMachine("d"), RecordedMachine("p")) as lk:
        assert lk.remote.ifname == "eth0"
    with pytest.raises(link.LinkError, match="no interface of the remote"), \
            link.prepared(_env(remote_netif=""), RecordedMachine("d"), RecordedMachine("p")):
        pytest.fail("taken")


def test_offload_on_an_interface_without_it_is_refused_before_any_change() -> None:
    dut = RecordedMachine("dut")
    with pytest.raises(link.LinkError, match="cannot turn on tls-hw-tx-offload, "
                                             "tls-hw-rx-offload"), \
            link.prepared(_env(), dut, RecordedMachine("peer"), offload=True):
        pytest.fail("taken")
    assert dut.changes() == []


# ss -Htnp state established on the recorded machine: an admin's SSH session (OpenSSH 9.8+
# names the session process sshd-session), a web server, a session over link-local IPv6
SSH_ON_ETH0 = ('0      0      192.0.2.2:22    203.0.113.9:50514 users:(("sshd-session",'
               'pid=912,fd=7),("sshd-session",pid=870,fd=7))\n')
WEB_ON_ETH0 = '0      0      192.0.2.2:443   203.0.113.9:50600 users:(("nginx",pid=77,fd=9))\n'
SSH_V6_MAPPED = ('0      0      [::ffff:192.0.2.2]:22 [::ffff:203.0.113.9]:50514 '
                 'users:(("sshd",pid=5,fd=4))\n')


@pytest.mark.parametrize("sockets", [SSH_ON_ETH0, SSH_V6_MAPPED])
def test_any_ssh_session_protects_its_interface(sockets: str) -> None:
    # no SSH_CONNECTION (sudo drops it; or the session is someone else's): ss still sees it
    dut = RecordedMachine("dut", sockets=WEB_ON_ETH0 + sockets)
    with pytest.raises(link.LinkError, match="refusing to reconfigure eth0 on dut"), \
            link.prepared(_env(netif="eth0"), dut, RecordedMachine("peer")):
        pytest.fail("taken")
    assert dut.changes() == []


def test_other_services_do_not_protect_an_interface() -> None:
    dut = RecordedMachine("dut", sockets=WEB_ON_ETH0)
    with link.prepared(_env(netif="eth0"), dut, RecordedMachine("peer")):
        pass
    assert dut.changes()[0] == "ip addr add 198.51.100.1/24 dev eth0"


@pytest.mark.parametrize(("column", "addr"), [
    ("192.0.2.2:22", "192.0.2.2"), ("[2001:db8::1]:22", "2001:db8::1"),
    ("[fe80::1]%eth0:22", "fe80::1"), ("[::ffff:192.0.2.2]:22", "192.0.2.2"),
    ("[::ffff:1]:22", "::ffff:1"),
])
def test_ss_address_columns(column: str, addr: str) -> None:
    assert link._local_address(column) == addr


OFFLOAD_NIC = "Features for ifb0:\nrx-checksumming: off\ntls-hw-tx-offload: off\n" \
              "tls-hw-rx-offload: off\ntls-hw-record: off [fixed]\n"


class OffloadNic(RecordedMachine):
    """A NIC with TLS offload, RX checksumming off (the kernel drops RX offload without it)."""

    def run(self, command: str, timeout: float = 60, check: bool = True) -> HostResult:
        if command.startswith("ethtool -k") and "awk" not in command:
            self.commands.append(command)
            return HostResult(command, 0, OFFLOAD_NIC, "")
        return super().run(command, timeout, check)


def test_offload_turns_rx_checksumming_on_first_checks_and_undoes_in_reverse() -> None:
    dut = OffloadNic("dut")
    with link.prepared(_env(), dut, RecordedMachine("peer"), offload=True):
        pass
    ethtool = [c for c in dut.commands if c.startswith("ethtool -K") or "awk" in c]
    assert ethtool[0] == "ethtool -K ifb0 rx on"
    assert ethtool[1] == "ethtool -K ifb0 tls-hw-tx-offload on tls-hw-rx-offload on"
    assert "awk" in ethtool[2]  # the check that they took
    assert ethtool[3:] == ["ethtool -K ifb0 tls-hw-tx-offload off tls-hw-rx-offload off",
                           "ethtool -K ifb0 rx off"]


@pytest.mark.parametrize(("shown", "rc", "said"), [
    ("tls-hw-tx-offload: on\ntls-hw-rx-offload: on\n", 0, ""),
    ("tls-hw-tx-offload: on\ntls-hw-rx-offload: off\n", 1, "tls-hw-rx-offload did not turn on"),
])
def test_the_offload_check_reads_ethtool_k(tmp_path: Path, shown: str, rc: int,
                                           said: str) -> None:
    import subprocess

    (tmp_path / "k.txt").write_text("Features for ifb0:\nrx-checksumming: on\n" + shown)
    end = link.LinkEnd("DUT", OffloadNic("dut"), "", "ifb0", "", "")  # type: ignore[arg-type]
    plan = link._offload_plan(end)
    check = plan[-1][1]
    res = subprocess.run(["bash", "-c", f"ethtool() {{ cat {tmp_path}/k.txt; }}; {check}"],
                         capture_output=True, text=True, timeout=30, check=False)
    assert (res.returncode, res.stdout.strip()) == (rc, said)
