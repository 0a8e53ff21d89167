"""What a remote machine needs to run ktlskit's peers, put into a temporary directory there.

The bundle is this ktlskit package and the Python packages its peers import (cffi,
cryptography, pyroute2, ...), as a tar.gz cached per content in ``CACHE/deploy``. When the
remote Python has this one's ABI, all of them are unpacked there and come first on its path
(the versions ktlskit was tested with; a remote's own cffi package next to another version
of its compiled backend does not load). Otherwise the compiled ones (cffi with its backend,
cryptography) must be the remote's own and only the missing pure-Python ones are sent.
Without them, Python >= 3.11, kTLS in the kernel or the tools the peers use, the error names
what is missing before anything runs. ``DIR/python`` starts the remote Python with the
deployed packages first on its path.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shlex
import sys
import sysconfig
import tarfile
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from .host import Host, HostError

#: What ktlskit's peer-side modules import beyond the standard library.
REMOTE_DEPS = ("cffi", "_cffi_backend", "pycparser", "cryptography", "pyroute2")
#: Compiled, or tied to a compiled module's version: only for a Python with this ABI.
ABI_BOUND = ("cffi", "_cffi_backend", "cryptography")
MIN_PYTHON = (3, 11)
TOOLS = ("ip", "ss", "ethtool", "timeout", "tar", "awk", "dd")
PYTHONS = ("python3", "python3.14", "python3.13", "python3.12", "python3.11")
_PROBE = ("import importlib.util, json, platform, sys, sysconfig; print(json.dumps({"
          "'version': list(sys.version_info[:2]), 'soabi': sysconfig.get_config_var('SOABI'), "
          "'have': [m for m in %r if importlib.util.find_spec(m)]}))")


class DeployError(HostError):
    """The remote machine lacks something ktlskit needs; the message says what."""


@dataclass(frozen=True)
class RemotePython:
    path: str
    version: tuple[int, int]
    soabi: str
    have: tuple[str, ...]


def _origin(module: str) -> Path:
    """The file or package directory of an importable module here."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise DeployError(f"{module} is not installed here: run ./setup.sh")
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin)


def _members() -> dict[str, Path]:
    import ktlskit

    return {"ktlskit": Path(ktlskit.__file__).parent, **{m: _origin(m) for m in REMOTE_DEPS}}


def bundle() -> Path:
    """The tar.gz of ktlskit and its peer-side dependencies (built once per content)."""
    members = _members()
    files = sorted((name, f) for name, root in members.items()
                   for f in ([root] if root.is_file() else root.rglob("*"))
                   if f.is_file() and "__pycache__" not in f.parts)
    h = hashlib.sha256()
    for name, f in files:
        st = f.stat()
        h.update(f"{name}:{f}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    out = paths.cache_dir() / "deploy" / f"ktlskit-{h.hexdigest()[:16]}.tar.gz"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".part")
    with tarfile.open(tmp, "w:gz", compresslevel=6) as tar:
        for root in members.values():
            tar.add(root, arcname=root.name,
                    filter=lambda ti: None if "__pycache__" in ti.name else ti)
    tmp.rename(out)
    for old in sorted(out.parent.glob("ktlskit-*.tar.gz"), key=lambda p: p.stat().st_mtime,
                      reverse=True)[3:]:
        old.unlink(missing_ok=True)  # keep the three newest
    return out


def find_python(host: Host) -> RemotePython:
    """The first Python >= 3.11 on the remote's PATH, and which dependencies it has."""
    seen = []
    probe = shlex.quote(_PROBE % (REMOTE_DEPS,))
    for exe in PYTHONS:
        res = host.run(f"command -v {exe} >/dev/null && {exe} -c {probe}", timeout=60,
                       check=False)
        if res.rc != 0 or not res.stdout.strip():
            continue
        info = json.loads(res.stdout.strip().splitlines()[-1])
        version = (int(info["version"][0]), int(info["version"][1]))
        if version >= MIN_PYTHON:
            return RemotePython(exe, version, str(info["soabi"]), tuple(info["have"]))
        seen.append(f"{exe} {version[0]}.{version[1]}")
    raise DeployError(f"{host.name}: no Python >= {MIN_PYTHON[0]}.{MIN_PYTHON[1]} on PATH "
                      f"(found: {', '.join(seen) or 'none'}); install python3 "
                      f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer there")


def _check_tools(host: Host) -> None:
    res = host.run(" ; ".join(f"command -v {t} >/dev/null || echo {t}" for t in TOOLS),
                   timeout=60, check=False)
    missing = res.stdout.split()
    if missing:
        raise DeployError(f"{host.name}: missing {', '.join(missing)} (the peers and counters "
                          "need iproute2, ethtool, coreutils, tar, awk)")


def to_send(py: RemotePython, local_soabi: str, where: str) -> list[str]:
    """What of ktlskit and its dependencies the remote Python needs sent."""
    if py.soabi == local_soabi:
        return ["ktlskit", *REMOTE_DEPS]
    lacking = [m for m in ABI_BOUND if m not in py.have]
    if lacking:
        raise DeployError(
            f"{where}: its {py.path} ({'.'.join(map(str, py.version))}, {py.soabi}) lacks "
            f"{', '.join(lacking)}, and the copies here are built for {local_soabi}: install "
            "them there (pip install cffi cryptography, or the distribution's python3-cffi "
            "and python3-cryptography)")
    return ["ktlskit", *(m for m in REMOTE_DEPS if m not in py.have and m not in ABI_BOUND)]


def deploy(host: Host, directory: str) -> str:
    """Put ktlskit into ``directory`` on ``host``; the path of the Python to run it with."""
    _check_tools(host)
    py = find_python(host)
    members = _members()
    need = to_send(py, sysconfig.get_config_var("SOABI"), host.name)
    tarball = bundle()
    lib = f"{directory}/lib"
    host.run(f"mkdir -p {lib}", timeout=30)
    host.put(tarball, f"{directory}/ktlskit.tar.gz")
    names = " ".join(shlex.quote(members[m].name) for m in need)
    host.run(f"tar -xzf {directory}/ktlskit.tar.gz -C {lib} {names} && "
             f"rm {directory}/ktlskit.tar.gz", timeout=300)
    wrapper = f"{directory}/python"
    # -P: the current directory does not go first on sys.path (a ktlskit checkout there)
    script = (f"#!/bin/sh\nPYTHONPATH={lib}${{PYTHONPATH:+:$PYTHONPATH}} "
              f"exec {shlex.quote(py.path)} -P \"$@\"\n")
    host.run(f"printf %s {shlex.quote(script)} >{wrapper} && chmod 0755 {wrapper}", timeout=30)
    return wrapper


def ktls_problem() -> str:
    """Why this machine's kernel cannot do kTLS, or "" (runs on the remote)."""
    import errno
    import socket

    with socket.create_server(("127.0.0.1", 0)) as srv, \
            socket.create_connection(srv.getsockname()) as c:
        try:
            c.setsockopt(socket.IPPROTO_TCP, 31, b"tls")  # TCP_ULP
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return "no kTLS in its kernel (the tls ULP is unknown: CONFIG_TLS, modprobe tls)"
            return f"setsockopt(TCP_ULP, \"tls\") failed: {exc}"
    return ""


if __name__ == "__main__":  # build the bundle (to see its size)
    print(bundle())
    sys.exit(0)
