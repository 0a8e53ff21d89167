"""Deploying ktlskit to a machine, done here into a temporary directory of this machine:
the bundle unpacks, the wrapper's Python imports the deployed copy, and calls work."""

from __future__ import annotations

import tarfile

import pytest

from ktlskit import tlsstats
from ktlskit.hosts import deploy
from ktlskit.hosts.call import call
from ktlskit.hosts.local import LocalHost


def test_the_bundle_holds_ktlskit_and_its_peer_dependencies() -> None:
    with tarfile.open(deploy.bundle()) as tar:
        tops = {n.split("/", 1)[0] for n in tar.getnames()}
    assert {"ktlskit", "cffi", "cryptography", "pyroute2", "pycparser"} <= tops
    assert any(t.startswith("_cffi_backend") for t in tops)
    assert deploy.bundle() == deploy.bundle()  # cached


def test_deploy_then_call_through_the_wrapper() -> None:
    host = LocalHost()
    try:
        python = deploy.deploy(host, host.tmpdir)
        assert python == f"{host.tmpdir}/python"
        where = host.run(f"{python} -c 'import ktlskit; print(ktlskit.__file__)'",
                         timeout=60).stdout.strip()
        assert where == f"{host.tmpdir}/lib/ktlskit/__init__.py"
        host.python = python
        assert call(host, tlsstats.parse_tls_stat, "TlsTxSw 1") == {"TlsTxSw": 1}
        assert isinstance(call(host, deploy.ktls_problem), str)
    finally:
        host.close()


def test_no_python_is_named() -> None:
    class NoPython(LocalHost):
        def run(self, command: str, timeout: float = 60, check: bool = True):  # type: ignore
            return super().run("exit 1" if "python" in command else command, timeout, check)

    with pytest.raises(deploy.DeployError, match=r"no Python >= 3\.11 on PATH"):
        deploy.find_python(NoPython())


LOCAL = "cpython-311-x86_64-linux-gnu"


def test_same_abi_gets_everything_even_what_it_has() -> None:
    # Debian's python3-cffi-backend without python3-cffi: cffi from here would load the
    # remote's backend of another version and refuse to start; so everything is sent
    py = deploy.RemotePython("python3", (3, 11), LOCAL, ("_cffi_backend",))
    assert deploy.to_send(py, LOCAL, "dut") == ["ktlskit", *deploy.REMOTE_DEPS]


def test_another_abi_uses_its_own_compiled_packages() -> None:
    py = deploy.RemotePython("python3", (3, 12), "cpython-312-aarch64-linux-gnu",
                             ("cffi", "_cffi_backend", "cryptography"))
    assert deploy.to_send(py, LOCAL, "dut") == ["ktlskit", "pycparser", "pyroute2"]
    lacking = deploy.RemotePython("python3", (3, 12), "cpython-312-aarch64-linux-gnu", ())
    with pytest.raises(deploy.DeployError, match="lacks cffi, _cffi_backend, cryptography"):
        deploy.to_send(lacking, LOCAL, "dut")
