"""A fork server for the call seam: ``python -m ktlskit.hosts.call`` without the Python start.

Under TCG a Python start with ktlskit's imports took 5.3 s in the guest (8.2 s reading the
files over 9p), paid by every ``call()`` and ``start()``. This server does the imports once
(``--preload``) and forks a worker per request, which runs ``call.serve(REQUEST)`` exactly as
``python -m ktlskit.hosts.call REQUEST`` would, in the request's network namespace.

Protocol, on a TCP connection to 127.0.0.1:PORT in the server's namespace (the harness opens
it through its SSH connection): the client sends one JSON line ``{"request": ..., "netns": ...,
"marker": ...}``; the server answers with frames (one kind byte, a 4-byte big-endian length,
the payload): ``S`` the worker started, ``X`` refused (payload: why; the client falls back to a
Python start), ``O``/``E`` the worker's stdout/stderr, ``R`` its exit status (decimal). The
client closing the connection, or sending anything, kills the worker's process group.

Code that changed under a running server would be run stale: every request first compares the
modification times of the ktlskit modules the server loaded, and a change refuses it and ends
the server (the harness then starts a new one). Stdlib only.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib
import json
import os
import select
import signal
import socket
import struct
import sys
import time
import traceback
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
MS_REC, MS_SLAVE, MNT_DETACH = 0x4000, 0x80000, 2


def frame(kind: bytes, payload: bytes = b"") -> bytes:
    return kind + struct.pack(">I", len(payload)) + payload


# ---- the server ----------------------------------------------------------------

def stamp() -> dict[str, int]:
    """Modification time of every loaded ktlskit module's file."""
    out = {}
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if f and Path(f).resolve().is_relative_to(PACKAGE):
            out[f] = os.stat(f).st_mtime_ns
    return out


def changed(loaded: dict[str, int]) -> list[str]:
    out = []
    for f, mtime in loaded.items():
        try:
            if os.stat(f).st_mtime_ns != mtime:
                out.append(f)
        except OSError:
            out.append(f)
    return out


def serve_forever(listener: socket.socket, loaded: dict[str, int]) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # handlers are reaped by the kernel
    while True:
        conn, _ = listener.accept()
        stale = changed(loaded)
        if os.fork() == 0:
            listener.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            try:
                _handle(conn, stale)
            finally:
                os._exit(0)
        conn.close()
        if stale:  # its handler refused; a new server has to load the new code
            return


def _read_request(conn: socket.socket) -> dict[str, str]:
    buf = b""
    conn.settimeout(30)
    while b"\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            raise EOFError("the client closed before its request")
        buf += chunk
    conn.settimeout(None)
    return json.loads(buf.split(b"\n", 1)[0])


def _handle(conn: socket.socket, stale: list[str]) -> None:
    req = _read_request(conn)
    if stale:
        conn.sendall(frame(b"X", f"code changed since the server started: {stale[0]}".encode()))
        return
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        conn.close()
        os.close(out_r)
        os.close(err_r)
        _worker(req, out_w, err_w)
    os.close(out_w)
    os.close(err_w)
    conn.sendall(frame(b"S"))
    status = _pump(conn, pid, out_r, err_r)
    marker = req.get("marker", "")
    if marker:  # after the worker: the harness waits for it on the console (splat check)
        with contextlib.suppress(OSError):
            Path("/dev/kmsg").write_text(marker + "\n")
    conn.sendall(frame(b"R", str(status).encode()))


def _pump(conn: socket.socket, pid: int, out_r: int, err_r: int) -> int:
    """Forward the worker's output until both pipes close; the client going away kills the
    worker's process group. Returns the worker's exit status (as a shell reports it)."""
    kinds = {out_r: b"O", err_r: b"E"}
    status: int | None = None
    deadline = 0.0
    while kinds:
        ready, _, _ = select.select([*kinds, conn], [], [], 0.2)
        if conn in ready:
            if status is not None:  # reaped already: only what it left behind is killed
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
                return status
            return _kill(pid)
        for fd in ready:
            data = os.read(fd, 65536)
            if data:
                conn.sendall(frame(kinds[fd], data))
            else:
                os.close(fd)
                del kinds[fd]
        if status is None:
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                status = _shell_status(raw)
                deadline = time.monotonic() + 0.5  # what the worker left in the pipes
        elif not ready and time.monotonic() > deadline:
            break  # a background child of the worker holds the pipes
    if status is None:
        status = _shell_status(os.waitpid(pid, 0)[1])
    return status


def _shell_status(raw: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128 + the signal."""
    code = os.waitstatus_to_exitcode(raw)
    return 128 - code if code < 0 else code


def _kill(pid: int, grace: float = 2.0) -> int:
    """SIGTERM to the worker's process group (what a kill of an SSH command sends), SIGKILL
    after ``grace`` s; the worker's status."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(OSError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                return _shell_status(raw)
            time.sleep(0.02)
    return 137


# ---- the worker ----------------------------------------------------------------

def _worker(req: dict[str, str], out_w: int, err_w: int) -> None:
    code = 1
    try:
        os.setsid()  # its own process group: a kill reaches what it started
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        for fd in (null, out_w, err_w):
            os.close(fd)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the process's own fds
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        os.environ.pop("PYTHONPATH", None)  # the server's own (served.write_script)
        if req.get("netns"):
            enter_netns(req["netns"])
        from ktlskit.hosts import call

        code = call.serve(req["request"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def enter_netns(name: str) -> None:
    """What ``ip netns exec NAME`` does before it runs its command: a mount namespace of its
    own, the network namespace, and a /sys that shows that namespace's devices."""
    libc = ctypes.CDLL(None, use_errno=True)

    def check(rc: int, what: str) -> None:
        if rc != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")

    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        check(libc.setns(fd, CLONE_NEWNET), f"setns {name}")
    finally:
        os.close(fd)
    check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    check(libc.mount(b"", b"/", b"none", MS_SLAVE | MS_REC, None), "mount --make-rslave /")
    libc.umount2(b"/sys", MNT_DETACH)  # as ip does: there may have been no sysfs there
    check(libc.mount(name.encode(), b"/sys", b"sysfs", 0, None), "mount sysfs")


def identity() -> dict[str, object]:
    """Where a call runs: its network namespace, the devices /sys shows, process ids and cwd
    (a served call must look like one run with ``ip netns exec`` over SSH)."""
    return {"netns": os.readlink("/proc/self/ns/net"),
            "sys_class_net": sorted(os.listdir("/sys/class/net")),
            "pid": os.getpid(), "pgid": os.getpgid(0), "cwd": os.getcwd()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ktlskit.hosts.callserver")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--preload", action="append", default=[], metavar="MODULE")
    args = p.parse_args(argv)
    for name in ["ktlskit.hosts.call", *args.preload]:
        importlib.import_module(name)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(64)
    loaded = stamp()
    print(f"ktlskit callserver: ready on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
    serve_forever(listener, loaded)
    return 0


if __name__ == "__main__":
    sys.exit(main())
