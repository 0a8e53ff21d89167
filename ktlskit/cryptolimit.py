"""The crypto limit of a TLS benchmark: what the AEAD alone does, kernel and OpenSSL.

Runs in the guest. For the negotiated cipher it finds which kernel driver implements the
AEAD kTLS allocates (``/proc/crypto``: the entry whose ``refcnt`` rises while a kTLS socket
holds its keys), measures that AEAD's raw throughput on whole TLS records through the kernel
crypto user API (``AF_ALG``, ``aead``), and OpenSSL's with ``openssl speed -evp`` on the same
record size, once as it runs and once with AES-NI and PCLMULQDQ masked off
(``OPENSSL_ia32cap``) — the difference is the evidence that OpenSSL used the instructions.

All rates are wall-clock bytes of plaintext per second, like the transfers they bound.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .errors import KtlskitError

PROC_CRYPTO = "/proc/crypto"
TAG = 16

# kTLS cipher -> the kernel AEAD name kTLS allocates (net/tls/tls_main.c, tls_cipher_desc)
KERNEL_AEAD = {
    "aes-gcm-128": "gcm(aes)", "aes-gcm-256": "gcm(aes)", "aes-ccm-128": "ccm(aes)",
    "chacha20-poly1305": "rfc7539(chacha20,poly1305)", "sm4-gcm": "gcm(sm4)",
    "sm4-ccm": "ccm(sm4)", "aria-gcm-128": "gcm(aria)", "aria-gcm-256": "gcm(aria)",
}
# The library implementation of the same AEAD (crypto/aes.c): what kTLS gets when no
# architecture AEAD driver (CONFIG_CRYPTO_AES_NI_INTEL) is built. Its AES and GHASH are the
# library's, which use AES-NI/PCLMULQDQ one block at a time when the kernel sees them
# (``clearcpuid=`` on the kernel command line hides them: then it is generic C).
KERNEL_LIB = {"gcm(aes)": "gcm-aes-lib", "ccm(aes)": "ccm-aes-lib"}
AF_ALG_RESTRICT = Path("/proc/sys/crypto/af_alg_restrict")
# kTLS cipher -> ``openssl speed -evp`` name
OPENSSL_EVP = {
    "aes-gcm-128": "aes-128-gcm", "aes-gcm-256": "aes-256-gcm", "aes-ccm-128": "aes-128-ccm",
    "chacha20-poly1305": "chacha20-poly1305", "sm4-gcm": "sm4-gcm",
    "aria-gcm-128": "aria-128-gcm", "aria-gcm-256": "aria-256-gcm",
}
KEY_SIZE = {"aes-gcm-128": 16, "aes-gcm-256": 32, "aes-ccm-128": 16, "chacha20-poly1305": 32,
            "sm4-gcm": 16, "sm4-ccm": 16, "aria-gcm-128": 16, "aria-gcm-256": 32}
# OPENSSL_ia32cap: the first word is CPUID.1 EDX (bits 0-31) and ECX (32-63); the second
# CPUID.7 EBX (0-31) and ECX (32-63).
IA32CAP_BITS = {"aes-ni": (0, 57), "pclmulqdq": (0, 33), "avx": (0, 60), "avx2": (1, 5),
                "vaes": (1, 41), "vpclmulqdq": (1, 42)}
OPENSSL_NO_AESNI = "~0x200000200000000"  # clears AES-NI (57) and PCLMULQDQ (33)


class CryptoLimitError(KtlskitError):
    """A crypto measurement could not be made (no AF_ALG, no such algorithm, no openssl)."""


# ---- /proc/crypto ---------------------------------------------------------------------------

@dataclass(frozen=True)
class CryptoAlg:
    """One /proc/crypto entry."""

    name: str
    driver: str
    priority: int
    refcnt: int
    type: str
    internal: bool
    selftest: str
    fields: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


def parse_proc_crypto(text: str) -> list[CryptoAlg]:
    """Blank-line separated ``key : value`` blocks, in the kernel's order."""
    out = []
    for block in re.split(r"\n\s*\n", text.strip()):
        f: dict[str, str] = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                f[key.strip()] = value.strip()
        if "name" in f and "driver" in f:
            out.append(CryptoAlg(f["name"], f["driver"], int(f.get("priority", "0")),
                                 int(f.get("refcnt", "0")), f.get("type", ""),
                                 f.get("internal", "no") == "yes", f.get("selftest", ""), f))
    return out


def candidates(algs: list[CryptoAlg], name: str) -> list[CryptoAlg]:
    """The entries a lookup of ``name`` may pick, best (highest priority) first."""
    usable = [a for a in algs if a.name == name and not a.internal
              and a.selftest in ("passed", "")]
    return sorted(usable, key=lambda a: -a.priority)


def read_proc_crypto() -> list[CryptoAlg]:
    with open(PROC_CRYPTO) as f:
        return parse_proc_crypto(f.read())


def refcnt_risers(before: list[CryptoAlg], after: list[CryptoAlg], name: str) -> list[str]:
    """Drivers called ``name`` (algorithm or driver name) whose refcnt rose; an instance
    created meanwhile counts from 0."""
    old = {a.driver: a.refcnt for a in before}
    return [a.driver for a in after if name in (a.name, a.driver)
            and a.refcnt > old.get(a.driver, 0)]


@contextmanager
def watch_drivers(name: str) -> Iterator[list[str]]:
    """Yields a list that, after the block, holds the drivers of ``name`` the block took."""
    taken: list[str] = []
    before = read_proc_crypto()
    yield taken
    taken += refcnt_risers(before, read_proc_crypto(), name)


# ---- the kernel AEAD through AF_ALG ----------------------------------------------------------

def _is_ccm(alg: str) -> bool:
    return alg.split("(")[0] in ("ccm", "ccm_base")


def _iv(alg: str) -> bytes:
    """A valid IV: 12 bytes (GCM, ChaCha20-Poly1305), or CCM's 16 whose first byte is L-1
    (TLS uses L = 3, a 12-byte nonce)."""
    if not _is_ccm(alg):
        return os.urandom(12)
    return bytes([2]) + os.urandom(15)


@dataclass(frozen=True)
class AeadRate:
    """Raw AEAD encryption throughput of one implementation."""

    implementation: str  # the kernel driver, or "openssl"
    record: int  # plaintext bytes per operation
    ops: int
    seconds: float

    @property
    def mbytes_per_s(self) -> float:
        return self.ops * self.record / self.seconds / 1e6 if self.seconds else 0.0

    def to_json(self) -> dict[str, object]:
        return {"implementation": self.implementation, "record": self.record, "ops": self.ops,
                "seconds": round(self.seconds, 4), "mbytes_per_s": round(self.mbytes_per_s, 2)}


@contextmanager
def afalg_unrestricted() -> Iterator[None]:
    """Lift ``crypto.af_alg_restrict`` (7.3: 1 = only an allowlist, ``ccm(aes)``, may be bound
    and everything else gets ENOENT) for the block, then put the old value back."""
    try:
        old = AF_ALG_RESTRICT.read_text().strip()
    except OSError:
        yield  # an older kernel: no restriction
        return
    try:
        AF_ALG_RESTRICT.write_text("0")
    except OSError as exc:
        raise CryptoLimitError(f"cannot lift {AF_ALG_RESTRICT} ({old}): {exc}") from exc
    try:
        yield
    finally:
        AF_ALG_RESTRICT.write_text(old)


def afalg_rate(alg: str, key_size: int, record: int, aad: int, seconds: float) -> AeadRate:
    """Encrypt ``record``-byte messages with ``aad`` bytes of AAD for ``seconds``.

    ``alg`` is a kernel AEAD name or driver name; the result names the driver that ran.
    """
    if not hasattr(socket, "AF_ALG"):
        raise CryptoLimitError("this Python has no AF_ALG support")
    with afalg_unrestricted(), watch_drivers(alg) as taken:
        try:
            tfm = socket.socket(socket.AF_ALG, socket.SOCK_SEQPACKET, 0)
        except OSError as exc:
            raise CryptoLimitError(f"AF_ALG socket: {exc} (CONFIG_CRYPTO_USER_API_AEAD?)") \
                from exc
        try:
            tfm.bind(("aead", alg))
        except OSError as exc:
            tfm.close()
            raise CryptoLimitError(f"kernel AEAD {alg!r} is not available: {exc}") from exc
    driver = _driver_of(alg, taken)
    try:
        tfm.setsockopt(socket.SOL_ALG, socket.ALG_SET_KEY, os.urandom(key_size))
        tfm.setsockopt(socket.SOL_ALG, socket.ALG_SET_AEAD_AUTHSIZE, None, TAG)
        op, _ = tfm.accept()
        return _afalg_loop(op, alg, driver, record, aad, seconds)
    finally:
        tfm.close()


def _driver_of(alg: str, taken: list[str]) -> str:
    if taken:
        return taken[0]
    by_driver = [a for a in read_proc_crypto() if a.driver == alg]
    if by_driver:
        return by_driver[0].driver
    best = candidates(read_proc_crypto(), alg)
    return best[0].driver if best else alg


def _afalg_loop(op: socket.socket, alg: str, driver: str, record: int, aad: int,
                seconds: float) -> AeadRate:
    iv = _iv(alg)
    msg = os.urandom(aad + record)
    want = aad + record + TAG
    ops = 0
    try:
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            op.sendmsg_afalg([msg], op=socket.ALG_OP_ENCRYPT, iv=iv, assoclen=aad)
            out = op.recv(want)
            if len(out) != want:
                raise CryptoLimitError(f"AF_ALG {alg}: {len(out)} bytes back, expected {want}")
            ops += 1
            now = time.perf_counter()
            if now >= deadline:
                break
    finally:
        op.close()
    return AeadRate(driver, record, ops, now - start)


# ---- OpenSSL -----------------------------------------------------------------------------------

def parse_speed_mr(text: str) -> tuple[str, int, int, float]:
    """``openssl speed -mr`` output -> (algorithm, record size, operations, seconds).

    Uses the ``+R:ops:alg:seconds`` and ``+H:size`` lines; raises if either is missing.
    """
    res = re.search(r"^\+R:(\d+):([^:]+):([\d.]+)\s*$", text, re.M)
    size = re.search(r"^\+H:(\d+)\s*$", text, re.M)
    if not res or not size:
        raise CryptoLimitError(f"cannot parse openssl speed -mr output:\n{text.strip()[-500:]}")
    return res[2], int(size[1]), int(res[1]), float(res[3])


def parse_ia32cap(text: str) -> dict[str, bool]:
    """``openssl version -c`` (``OPENSSL_ia32cap=0x...:0x...``) -> the instructions it sees."""
    m = re.search(r"OPENSSL_ia32cap=0x([0-9a-fA-F]+):0x([0-9a-fA-F]+)", text)
    if not m:
        raise CryptoLimitError(f"no OPENSSL_ia32cap in openssl version -c output: {text!r}")
    words = (int(m[1], 16), int(m[2], 16))
    return {name: bool(words[w] >> bit & 1) for name, (w, bit) in IA32CAP_BITS.items()}


def _openssl(argv: list[str], env: dict[str, str] | None = None,
             timeout: float = 120) -> str:
    try:
        res = subprocess.run(["openssl", *argv], capture_output=True, text=True,
                             timeout=timeout, env=env, check=False)
    except FileNotFoundError as exc:
        raise CryptoLimitError("openssl is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise CryptoLimitError(f"openssl {' '.join(argv)}: no answer in {timeout}s") from exc
    if res.returncode:
        raise CryptoLimitError(f"openssl {' '.join(argv)} failed ({res.returncode}): "
                               f"{(res.stderr or res.stdout).strip()[-400:]}")
    return res.stdout + res.stderr


def openssl_caps() -> dict[str, object]:
    """OpenSSL's version and the x86 instructions it detected (``openssl version -c``)."""
    text = _openssl(["version", "-c"])
    version = _openssl(["version"]).strip()
    return {"version": version, "ia32cap": parse_ia32cap(text),
            "ia32cap_raw": re.search(r"OPENSSL_ia32cap=\S+", text)[0]}  # type: ignore[index]


def openssl_rate(cipher: str, record: int, seconds: int, no_aesni: bool = False) -> AeadRate:
    """``openssl speed -evp`` on one record size (wall clock, ``-elapsed``)."""
    evp = OPENSSL_EVP.get(cipher)
    if evp is None:
        raise CryptoLimitError(f"no openssl speed name for {cipher}")
    env = {**os.environ, "OPENSSL_ia32cap": OPENSSL_NO_AESNI} if no_aesni else None
    out = _openssl(["speed", "-mr", "-elapsed", "-seconds", str(seconds), "-bytes", str(record),
                    "-evp", evp], env=env, timeout=seconds * 10 + 60)
    _alg, size, ops, secs = parse_speed_mr(out)
    return AeadRate("openssl" + (" (AES-NI, PCLMULQDQ masked)" if no_aesni else ""), size, ops,
                    secs)


# ---- the CPU -------------------------------------------------------------------------------------

CPU_FLAGS = ("aes", "pclmulqdq", "avx", "avx2", "vaes", "vpclmulqdq", "avx512f")


def parse_cpuinfo(text: str) -> dict[str, object]:
    """The first CPU's model name and, of the flags the AEADs use, those the kernel sees
    (``clearcpuid=`` removes flags here but not from user space's CPUID)."""
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not model:
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return {"model": model, "flags": [f for f in CPU_FLAGS if f in flags]}


def cpu_info() -> dict[str, object]:
    with open("/proc/cpuinfo") as f:
        info = parse_cpuinfo(f.read())
    info["cpus"] = os.cpu_count() or 0
    return info


# ---- which driver kTLS uses --------------------------------------------------------------------

def ktls_driver(cipher: str, open_ktls: Callable[[], Callable[[], None]]) -> dict[str, object]:
    """The kernel AEAD driver(s) kTLS took for ``cipher``.

    ``open_ktls`` installs kTLS keys on some socket(s) and returns a function that closes
    them; the drivers whose refcnt rose meanwhile are the ones kTLS allocated.
    """
    name = KERNEL_AEAD[cipher]
    with watch_drivers(name) as taken:
        close = open_ktls()
    close()
    algs = read_proc_crypto()
    best = candidates(algs, name)
    return {"name": name, "in_use": sorted(set(taken)),
            "candidates": [{"driver": a.driver, "priority": a.priority} for a in best]}
