"""The net.config ktlskit writes beside the kernel's drivers/net tests."""

from pathlib import Path

import pytest

from ktlskit.hosts.netenv import NetEnv
from ktlskit.kselftest_env import net_config


def test_net_config_has_the_kernels_keys_only_and_no_quotes() -> None:
    env = NetEnv(netif="eth1", local_v4="203.0.113.1", remote_v4="203.0.113.2",
                 local_v6="2001:db8:1::1", remote_v6="2001:db8:1::2", remote_type="ssh",
                 remote_args="root@203.0.113.2", dut="lab-dut", remote="lab-peer",
                 ssh_config="/x/ssh_config", extra={"LOCAL_PREFIX_V6": "2001:db8:2::/64"})
    text = net_config(env)
    assert text.splitlines() == [
        "NETIF=eth1", "LOCAL_V4=203.0.113.1", "LOCAL_V6=2001:db8:1::1",
        "REMOTE_V4=203.0.113.2", "REMOTE_V6=2001:db8:1::2", "REMOTE_TYPE=ssh",
        "REMOTE_ARGS=root@203.0.113.2", "LOCAL_PREFIX_V6=2001:db8:2::/64"]
    # read back the way the kernel's lib/py does: split at the first '=', nothing stripped
    parsed = dict(line.split("=", 1) for line in text.splitlines())
    assert parsed["REMOTE_ARGS"] == "root@203.0.113.2"


def test_an_install_without_net_lib_py_is_refused_before_copying(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ktlskit import kselftest_env
    from ktlskit.kernel.build import BuildResult
    from ktlskit.kselftest import KselftestError

    tree = tmp_path / "tree"
    (tree / "tools/testing/selftests/drivers/net").mkdir(parents=True)
    inst = tmp_path / "inst"
    (inst / "net").mkdir(parents=True)
    (inst / "net/lib.sh").write_text("")  # what make install leaves when net/lib fails
    monkeypatch.setattr(kselftest_env, "install_target", lambda kb, target: inst)
    kb = BuildResult(tmp_path / "bzImage", tmp_path / "build", tree, "default", "", "", 0.0)
    with pytest.raises(KselftestError, match=r"drivers/net: make install left out "
                                             r"net/lib/py.*clang missing"):
        kselftest_env.stage(kb, "drivers/net")
