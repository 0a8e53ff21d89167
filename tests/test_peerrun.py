"""Both peers started through the call seam on this machine, as the scenario starts them: the
server announces its free port, the client finds it, and both ends report a Result, a
complete stream where the kernel has kTLS, the kernel's refusal where it has not."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from ktlskit import peerrun
from ktlskit.hosts import deploy
from ktlskit.hosts.call import RemoteError, call, start
from ktlskit.hosts.local import LocalHost
from ktlskit.peer import KeyMaterial, Result


@pytest.fixture()
def host(local_host: LocalHost) -> LocalHost:
    return local_host


def test_both_ends_always_report(host: LocalHost) -> None:
    keys = Path(host.tmpdir) / "keys.json"
    keys.write_text(json.dumps(asdict(KeyMaterial.generate("1.3", "aes-gcm-128"))))
    kw = {"addr": "127.0.0.1", "keys_file": str(keys), "nbytes": 65536, "rekey_every": 2}
    server = start(host, peerrun.run_peer, "server", port=0, connect_timeout=60, **kw)
    server.await_text("listening on", 120, "the server")
    port = int(server.process.stderr.split("listening on ")[1].split()[0])
    assert port > 0
    client = call(host, peerrun.run_peer, "client", port=port, connect_timeout=30, **kw)
    res = server.result(timeout=120)
    assert isinstance(client, Result) and isinstance(res, Result)
    assert (client.role, res.role) == ("client", "server")
    if deploy.ktls_problem():  # this kernel has no kTLS: each end names the refusal
        for r in (client, res):
            assert not r.ok and r.errors[0].startswith("setup: "), r.errors
    else:
        assert client.ok and res.ok, (client.errors, res.errors)
        assert client.sha256_sent == res.sha256_received and client.tx_rekeys > 0


def test_bad_requests_come_back_named(host: LocalHost, tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(asdict(KeyMaterial.generate("1.2", "aes-gcm-128"))))
    with pytest.raises(RemoteError, match=r"TLS 1\.2 has no rekey"):
        call(host, peerrun.run_peer, "client", "127.0.0.1", 1, str(keys), 16, rekey_every=4)
    with pytest.raises(RemoteError, match="unknown role 'proxy'"):
        call(host, peerrun.run_peer, "proxy", "127.0.0.1", 1, str(keys), 16)
