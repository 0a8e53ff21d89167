"""The call seam on this machine (LocalHost): a ktlskit function runs in a fresh Python, or in
a worker of the call server (as in a guest), and its typed result comes back; errors come back
typed; only ktlskit functions are callable."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from callserved import ServedLocalHost

from ktlskit import peer, peerrun, tlsstats, topology
from ktlskit.hosts.call import CallError, RemoteError, call, command, decode, encode, start
from ktlskit.hosts.local import LocalHost
from ktlskit.tlsstats import Snapshot, SocketTls
from ktlskit.topology import Names, Topology


@pytest.fixture(scope="module", params=["python", "served"])
def host(request: pytest.FixtureRequest) -> Iterator[LocalHost]:
    h = LocalHost() if request.param == "python" else ServedLocalHost()
    yield h
    if isinstance(h, ServedLocalHost):
        assert h.refused == 0 and h.served_count > 0
    h.close()


def test_a_dict_result(host: LocalHost) -> None:
    assert call(host, tlsstats.parse_tls_stat, "TlsTxSw 3\nTlsRxSw\t4\n") == \
        {"TlsTxSw": 3, "TlsRxSw": 4}


def test_a_dataclass_comes_back_as_itself(host: LocalHost) -> None:
    names = call(host, Names.generate, "00abcd")
    assert isinstance(names, Names)
    assert names == Names.generate("00abcd")
    assert names.ns == ("ktls-00abcd-a", "ktls-00abcd-b")


def test_dataclass_arguments_go_out_and_back(host: LocalHost) -> None:
    before = Snapshot({"TlsTxSw": 1}, {"/eth0": {"tx_tls_ctx": 0}},
                      [SocketTls("", "1.1.1.1:1", "2.2.2.2:2", flags=("rxnopad",))])
    after = Snapshot({"TlsTxSw": 3}, {"/eth0": {"tx_tls_ctx": 2}}, [])
    assert call(host, tlsstats.delta, before, after) == \
        {"TlsTxSw": 2, "/eth0:tx_tls_ctx": 2, "tx_tls_ctx": 2}


def test_a_ktlskit_error_comes_back_typed(host: LocalHost) -> None:
    with pytest.raises(RemoteError, match="no peer control socket") as err:
        call(host, peer.send_control, "/nonexistent/ctl", "tx")
    assert err.value.kind == "PeerError"


def test_only_ktlskit_functions_can_be_called(host: LocalHost) -> None:
    with pytest.raises(CallError, match="only module-level functions of ktlskit"):
        call(host, os.getcwd)


def test_a_crash_is_reported_with_its_output(host: LocalHost) -> None:
    with pytest.raises(CallError, match=r"returned no result \(exit 1\)") as err:
        call(host, tlsstats.parse_tls_stat, 42)  # not text: AttributeError, a traceback
    assert "AttributeError" in str(err.value)


def test_in_the_background_with_progress(host: LocalHost) -> None:
    pending = start(host, topology.Names.generate, "beef01")
    assert pending.result(timeout=60).run_id == "beef01"


def test_the_command_quotes_its_request(host: LocalHost) -> None:
    cmd = command(host, tlsstats.parse_tls_stat, ["it's"], netns="ns 1")
    assert cmd.startswith("ip netns exec 'ns 1' ")
    assert "ktlskit.tlsstats:parse_tls_stat" in cmd


def test_encode_decode_round_trip() -> None:
    topo = Topology("veth", "a", "b", "192.0.2.1", "2001:db8::1", ["a/x", "b/y"], True, "r1")
    assert decode(Topology, encode(topo)) == topo
    assert decode(tuple[int, ...], [1, 2]) == (1, 2)
    assert decode(Topology | None, None) is None


def test_a_function_cannot_shadow_the_seams_own_options(host: LocalHost) -> None:
    with pytest.raises(CallError, match="parameter named timeout"):
        call(host, peerrun.accept_one, "127.0.0.1", 0)
