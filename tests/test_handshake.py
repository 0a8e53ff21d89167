"""Hand-off from a real TLS handshake (stdlib ssl) and the proof that the keys are right:
the connection continues with the reference record layer against a live ssl peer, including
KeyUpdates in both directions.  Where a kernel with kTLS is present (a guest), the same
connection also runs through KtlsSocket."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from ktlskit import ciphers, handshake, ksocket, uapi
from ktlskit.handshake import HandshakeError, KeylogError

FIXTURES = Path(__file__).parent / "fixtures"


def _load_interop() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ktlskit_interop", FIXTURES / "interop.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses need the module registered
    spec.loader.exec_module(module)
    return module


interop = _load_interop()


# --- against a live ssl peer, continued in userspace -----------------------------------------


@pytest.mark.parametrize("role", ["client", "server"])
def test_tls13_handoff_data_and_key_updates(role: str, tmp_path: Path) -> None:
    report = interop.run(role, "1.3", key_updates=2, workdir=tmp_path)
    assert report.version == uapi.TLS_1_3_VERSION
    assert report.cipher == "aes-gcm-256"  # OpenSSL's first default TLS 1.3 suite: SHA-384
    assert (report.tx_start_seq, report.rx_start_seq, report.leftover) == (0, 0, 0)
    assert report.greeting_ok  # data the peer sent right after its handshake was not lost
    assert report.echoes == 5
    # two KeyUpdates with update_requested=1, both answered by the peer, then one with 0
    assert report.peer_key_updates == 2
    assert (report.tx_generation, report.rx_generation) == (3, 2)
    assert report.peer_saw_eof  # our close_notify decrypted on the peer


def test_tls13_handoff_survives_peer_session_tickets(tmp_path: Path) -> None:
    report = interop.run("client", "1.3", key_updates=1, peer_tickets=True, workdir=tmp_path)
    assert report.tickets_dropped >= 1
    assert report.peer_key_updates == 1 and report.echoes == 4


TLS12_SUITES = {
    "ECDHE-ECDSA-AES128-GCM-SHA256": "aes-gcm-128",
    "ECDHE-ECDSA-AES256-GCM-SHA384": "aes-gcm-256",
    "ECDHE-ECDSA-CHACHA20-POLY1305": "chacha20-poly1305",
    "ECDHE-ECDSA-AES128-CCM": "aes-ccm-128",
}


@pytest.mark.parametrize("role", ["client", "server"])
@pytest.mark.parametrize("suite", sorted(TLS12_SUITES))
def test_tls12_handoff_data(suite: str, role: str, tmp_path: Path) -> None:
    report = interop.run(role, "1.2", tls12_cipher=suite, workdir=tmp_path)
    assert report.version == uapi.TLS_1_2_VERSION
    assert (report.suite, report.cipher) == (suite, TLS12_SUITES[suite])
    # Finished was record 0 in each direction
    assert (report.tx_start_seq, report.rx_start_seq, report.leftover) == (1, 1, 0)
    assert report.greeting_ok and report.echoes == 2 and report.peer_saw_eof


@pytest.mark.parametrize(
    ("suite", "cipher"),
    [
        ("TLS_AES_128_GCM_SHA256", "aes-gcm-128"),
        ("TLS_CHACHA20_POLY1305_SHA256", "chacha20-poly1305"),
        ("TLS_AES_128_CCM_SHA256", "aes-ccm-128"),
    ],
)
def test_tls13_other_suites_via_openssl_conf(suite: str, cipher: str, tmp_path: Path) -> None:
    """The ssl module cannot pick TLS 1.3 suites; an OpenSSL config in a child process can."""
    conf = tmp_path / "openssl.cnf"
    conf.write_text(
        "openssl_conf = conf\n[conf]\nssl_conf = ssl\n[ssl]\nsystem_default = sys\n"
        f"[sys]\nCiphersuites = {suite}\n"
    )
    env = dict(os.environ, OPENSSL_CONF=str(conf))
    proc = subprocess.run(
        [sys.executable, str(FIXTURES / "interop.py"), "server", "1.3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert (report["suite"], report["cipher"]) == (suite, cipher)
    assert report["peer_key_updates"] == 2 and report["echoes"] == 5
    assert report["greeting_ok"] and report["peer_saw_eof"]


# --- failure modes are typed and bounded -----------------------------------------------------


@pytest.fixture
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=5)
        server, _ = listener.accept()
    try:
        yield client, server
    finally:
        client.close()
        server.close()


def test_handshake_times_out_on_a_silent_peer(
    tcp_pair: tuple[socket.socket, socket.socket],
) -> None:
    client, _silent = tcp_pair
    start = time.monotonic()
    with pytest.raises(HandshakeError, match="timed out"):
        handshake.handoff_client(client, handshake.make_client_context(verify=False), timeout=0.3)
    assert time.monotonic() - start < 3


def test_handshake_peer_closes(tcp_pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = tcp_pair
    server.close()
    with pytest.raises(HandshakeError, match=r"closed|socket error"):
        handshake.handoff_client(client, handshake.make_client_context(verify=False), timeout=2)


def test_handshake_garbage_from_peer(tcp_pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = tcp_pair
    server.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    with pytest.raises(HandshakeError, match="not a TLS record"):
        handshake.handoff_client(client, handshake.make_client_context(verify=False), timeout=2)


def test_handshake_failure_is_typed(
    tcp_pair: tuple[socket.socket, socket.socket], tmp_path: Path
) -> None:
    """An unverifiable certificate: OpenSSL's failure surfaces as HandshakeError."""
    client, server = tcp_pair
    cert = interop.make_cert(tmp_path)
    peer_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    peer_ctx.load_cert_chain(cert)
    server.settimeout(5)

    def serve() -> None:
        with contextlib.suppress(ssl.SSLError, OSError):
            peer_ctx.wrap_socket(server, server_side=True).close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with pytest.raises(HandshakeError, match="certificate verify failed"):
        handshake.handoff_client(
            client, handshake.make_client_context(), server_hostname="localhost", timeout=5
        )
    thread.join(5)
    assert not thread.is_alive()


def test_client_context_needs_hostname_when_verifying(
    tcp_pair: tuple[socket.socket, socket.socket],
) -> None:
    with pytest.raises(HandshakeError, match="cannot start TLS"):
        handshake.handoff_client(tcp_pair[0], handshake.make_client_context(), timeout=1)


# --- pieces -----------------------------------------------------------------------------------

RANDOM = bytes(range(32))


def test_parse_keylog() -> None:
    text = (
        "# comment\n\n"
        f"CLIENT_TRAFFIC_SECRET_0 {RANDOM.hex()} {'aa' * 32}\n"
        f"SERVER_TRAFFIC_SECRET_0 {RANDOM.hex()} {'bb' * 32}\n"
        f"CLIENT_RANDOM {'11' * 32} {'cc' * 48}\n"
    )
    parsed = handshake.parse_keylog(text)
    assert parsed[RANDOM] == {
        "CLIENT_TRAFFIC_SECRET_0": b"\xaa" * 32,
        "SERVER_TRAFFIC_SECRET_0": b"\xbb" * 32,
    }
    assert handshake.secrets_for(text, b"\x11" * 32) == {"CLIENT_RANDOM": b"\xcc" * 48}
    with pytest.raises(KeylogError, match="no key log entries"):
        handshake.secrets_for(text, b"\x22" * 32)
    for bad in ("ONLY_TWO fields", f"X {RANDOM.hex()} zz", f"X {'00' * 31} aa"):
        with pytest.raises(KeylogError):
            handshake.parse_keylog(bad)


@pytest.mark.parametrize(
    ("name", "version", "expected"),
    [
        ("TLS_AES_128_GCM_SHA256", uapi.TLS_1_3_VERSION, "aes-gcm-128"),
        ("TLS_AES_256_GCM_SHA384", uapi.TLS_1_3_VERSION, "aes-gcm-256"),
        ("TLS_CHACHA20_POLY1305_SHA256", uapi.TLS_1_3_VERSION, "chacha20-poly1305"),
        ("TLS_AES_128_CCM_SHA256", uapi.TLS_1_3_VERSION, "aes-ccm-128"),
        ("ECDHE-RSA-AES128-GCM-SHA256", uapi.TLS_1_2_VERSION, "aes-gcm-128"),
        ("DHE-RSA-AES256-GCM-SHA384", uapi.TLS_1_2_VERSION, "aes-gcm-256"),
        ("ECDHE-ECDSA-AES128-CCM", uapi.TLS_1_2_VERSION, "aes-ccm-128"),
        ("ECDHE-RSA-CHACHA20-POLY1305", uapi.TLS_1_2_VERSION, "chacha20-poly1305"),
        ("ECDHE-ECDSA-ARIA256-GCM-SHA384", uapi.TLS_1_2_VERSION, "aria-gcm-256"),
    ],
)
def test_cipher_from_openssl(name: str, version: int, expected: str) -> None:
    assert handshake.cipher_from_openssl(name, version) is ciphers.lookup(expected)


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("TLS_AES_128_CCM_8_SHA256", uapi.TLS_1_3_VERSION),
        ("ECDHE-ECDSA-AES128-CCM8", uapi.TLS_1_2_VERSION),
        ("ECDHE-RSA-AES128-SHA256", uapi.TLS_1_2_VERSION),
        ("ECDHE-ECDSA-AES256-CCM", uapi.TLS_1_2_VERSION),
    ],
)
def test_cipher_from_openssl_rejects_non_ktls_suites(name: str, version: int) -> None:
    with pytest.raises(HandshakeError):
        handshake.cipher_from_openssl(name, version)


def test_prepare_context_disables_tickets() -> None:
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    handshake.prepare_context(server, server_side=True)
    assert server.num_tickets == 0
    assert server.options & ssl.OP_NO_TICKET
    client = handshake.make_client_context(verify=False)
    assert client.options & ssl.OP_NO_TICKET and client.options & ssl.OP_NO_RENEGOTIATION


# --- through the kernel, where there is one ---------------------------------------------------


def _kernel_has_ktls() -> bool:
    with (
        socket.create_server(("127.0.0.1", 0)) as listener,
        socket.create_connection(listener.getsockname(), timeout=2) as probe,
    ):
        conn, _ = listener.accept()
        with conn:
            try:
                ksocket.KtlsSocket(probe).attach_ulp()
            except ksocket.KtlsUnavailableError:
                return False
    return True


HAVE_KTLS = _kernel_has_ktls()


@pytest.mark.skipif(HAVE_KTLS, reason="kernel has kTLS: the full test below runs instead")
def test_to_ktls_on_a_kernel_without_tls(tmp_path: Path) -> None:
    """The hand-off itself works; the kernel (honestly) refuses the ULP on this host."""
    cert = interop.make_cert(tmp_path)
    peer_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    peer_ctx.load_cert_chain(cert)
    peer_ctx.num_tickets = 0
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=5)
        server, _ = listener.accept()
    peer = interop.Peer(peer_ctx, server, server_side=True)
    peer.start()
    try:
        ctx = handshake.make_client_context(cafile=str(cert))
        result = handshake.handoff_client(client, ctx, server_hostname="localhost")
        with pytest.raises(ksocket.KtlsUnavailableError, match="kernel has no TLS ULP"):
            result.to_ktls()
    finally:
        client.close()
        peer.join(10)
    assert not peer.is_alive()


def _tls_stat() -> dict[str, int]:
    """/proc/net/tls_stat counters (system-wide, so checked as lower bounds)."""
    lines = Path("/proc/net/tls_stat").read_text().splitlines()
    return {name: int(value) for name, value in (line.split() for line in lines if line.strip())}


class _Reader:
    """Exact-size reads over KtlsSocket.recv(), which may return several records' data."""

    def __init__(self, ksock: ksocket.KtlsSocket) -> None:
        self.ksock, self.pending = ksock, b""

    def read(self, size: int) -> bytes:
        while len(self.pending) < size:
            chunk = self.ksock.recv()
            if not chunk:
                raise AssertionError("peer closed")
            self.pending += chunk
        out, self.pending = self.pending[:size], self.pending[size:]
        return out


@pytest.mark.skipif(not HAVE_KTLS, reason="kernel has no TLS ULP (runs inside a kTLS guest)")
@pytest.mark.parametrize("role", ["client", "server"])
def test_ktls_socket_against_ssl_peer(role: str, tmp_path: Path) -> None:
    """Guest only: kernel TLS TX/RX, readback, and TLS 1.3 rekey in both directions."""
    cert = interop.make_cert(tmp_path)
    peer_is_server = role == "client"
    if peer_is_server:
        peer_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        peer_ctx.load_cert_chain(cert)
        peer_ctx.num_tickets = 0
        ours = handshake.make_client_context(cafile=str(cert))
    else:
        peer_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        peer_ctx.load_verify_locations(cert)
        ours = handshake.make_server_context(str(cert))
    peer_ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=5)
        server, _ = listener.accept()
    mine, theirs = (client, server) if peer_is_server else (server, client)
    mine.settimeout(5)
    peer = interop.Peer(peer_ctx, theirs, server_side=peer_is_server)
    peer.start()
    try:
        if peer_is_server:
            result = handshake.handoff_client(mine, ours, server_hostname="localhost")
        else:
            result = handshake.handoff_server(mine, ours)
        before = _tls_stat()
        ksock = result.to_ktls()
        assert ksock.get_crypto("tx") == result.tx_crypto_info
        assert ksock.get_crypto("rx").key == result.rx_crypto_info.key
        reader = _Reader(ksock)
        assert reader.read(len(interop.GREETING)) == interop.GREETING

        def round_trip(message: bytes) -> None:
            ksock.send(len(message).to_bytes(4, "big") + message)
            size = int.from_bytes(reader.read(4), "big")
            assert reader.read(size) == b"echo:" + message

        round_trip(b"through the kernel")
        tx_seq = ksock.get_crypto("tx").rec_seq_int
        assert tx_seq >= 1
        # 1: automatic handling of the peer's answering KeyUpdate inside recv()
        ksock.send_key_update(True)
        assert ksock.get_crypto("tx").rec_seq_int == 0
        round_trip(b"after kernel rekey 1")
        # 2: by hand, to see the kernel's EKEYEXPIRED while the RX rekey is pending
        ksock.send_key_update(True)
        message = b"after kernel rekey 2"
        ksock.send(len(message).to_bytes(4, "big") + message)
        content_type, data = ksock.recv_record(auto_key_update=False)
        assert (content_type, data) == (uapi.TLS_RECORD_TYPE_HANDSHAKE, bytes.fromhex("1800000100"))
        assert ksock.rx_key_update_pending
        start = time.monotonic()
        with pytest.raises(ksocket.KtlsKeyExpiredError, match="RX key update pending"):
            ksock.recv_record(auto_key_update=False)
        assert time.monotonic() - start < 2  # the kernel's answer, not the socket timeout
        assert ksock.handle_key_update(data) is True
        assert not ksock.rx_key_update_pending
        size = int.from_bytes(reader.read(4), "big")
        assert reader.read(size) == b"echo:" + message
        assert ksock.counters == ksocket.RekeyCounters(
            tx_rekeys=2, rx_rekeys=2, key_updates_sent=2, key_updates_received=2
        )
        assert ksock.get_crypto("rx").key == ksock.installed("rx").key  # type: ignore[union-attr]
        after = _tls_stat()
        for counter in ("TlsTxRekeyOk", "TlsRxRekeyOk", "TlsRxRekeyReceived"):
            assert after[counter] - before[counter] >= 2, counter
        ksock.send_record(uapi.TLS_RECORD_TYPE_ALERT, b"\x01\x00")
    finally:
        peer.join(10)
        mine.close()
    assert not peer.is_alive()
    assert peer.error is None, f"{peer.error!r}; peer events: {peer.events}"
    assert peer.saw_eof, f"peer events: {peer.events}"
