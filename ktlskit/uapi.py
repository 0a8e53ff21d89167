"""``include/uapi/linux/tls.h`` (Linux 7.3) through cffi, in ABI mode.

The struct declarations are generated from one table (:data:`CIPHER_FIELD_SIZES`) so every
``tls12_crypto_info_*`` struct follows the header's shape exactly: ``struct tls_crypto_info``
(two ``__u16``) followed by ``iv``, ``key``, ``salt`` and ``rec_seq`` byte arrays, in that order.
All members are bytes after the two ``__u16``, so there is no padding; the host tests compare
this layout against the real header compiled by a C compiler.

The kernel reads and writes these structs in host byte order (``version`` and ``cipher_type``
are native ``__u16``), which cffi gives us for free.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ktlskit.errors import KtlskitError

# --- versions -------------------------------------------------------------------------------
TLS_1_2_VERSION: Final = 0x0303
TLS_1_3_VERSION: Final = 0x0304

# --- cipher types ---------------------------------------------------------------------------
TLS_CIPHER_AES_GCM_128: Final = 51
TLS_CIPHER_AES_GCM_256: Final = 52
TLS_CIPHER_AES_CCM_128: Final = 53
TLS_CIPHER_CHACHA20_POLY1305: Final = 54
TLS_CIPHER_SM4_GCM: Final = 55
TLS_CIPHER_SM4_CCM: Final = 56
TLS_CIPHER_ARIA_GCM_128: Final = 57
TLS_CIPHER_ARIA_GCM_256: Final = 58

# --- socket levels and options --------------------------------------------------------------
SOL_TLS: Final = 282
TCP_ULP: Final = 31  # setsockopt(IPPROTO_TCP, TCP_ULP, b"tls")

TLS_TX: Final = 1
TLS_RX: Final = 2
TLS_TX_ZEROCOPY_RO: Final = 3
TLS_RX_EXPECT_NO_PAD: Final = 4
TLS_TX_MAX_PAYLOAD_LEN: Final = 5

# --- control messages (level SOL_TLS) -------------------------------------------------------
TLS_SET_RECORD_TYPE: Final = 1
TLS_GET_RECORD_TYPE: Final = 2

# --- TLS record content types ---------------------------------------------------------------
TLS_RECORD_TYPE_CHANGE_CIPHER_SPEC: Final = 20
TLS_RECORD_TYPE_ALERT: Final = 21
TLS_RECORD_TYPE_HANDSHAKE: Final = 22
TLS_RECORD_TYPE_DATA: Final = 23

# --- sock_diag INET_ULP_INFO_TLS attributes and TLS_INFO_{TX,RX}CONF values -----------------
TLS_INFO_UNSPEC: Final = 0
TLS_INFO_VERSION: Final = 1
TLS_INFO_CIPHER: Final = 2
TLS_INFO_TXCONF: Final = 3
TLS_INFO_RXCONF: Final = 4
TLS_INFO_ZC_RO_TX: Final = 5
TLS_INFO_RX_NO_PAD: Final = 6
TLS_INFO_TX_MAX_PAYLOAD_LEN: Final = 7

TLS_CONF_BASE: Final = 1
TLS_CONF_SW: Final = 2
TLS_CONF_HW: Final = 3
TLS_CONF_HW_RECORD: Final = 4

# Kernel-internal limits from include/net/tls.h that shape what user space may ask for.
TLS_MAX_PAYLOAD_SIZE: Final = 1 << 14
TLS_MIN_RECORD_SIZE_LIM: Final = 1 << 6

CRYPTO_INFO_HEADER_SIZE: Final = 4
"""``sizeof(struct tls_crypto_info)``; getsockopt with this length returns only the header."""

FIELD_ORDER: Final = ("iv", "key", "salt", "rec_seq")


@dataclass(frozen=True)
class FieldSizes:
    """The four array sizes of one ``tls12_crypto_info_*`` struct, as the header defines them."""

    struct_name: str
    iv: int
    key: int
    salt: int
    rec_seq: int


CIPHER_FIELD_SIZES: Final[dict[int, FieldSizes]] = {
    TLS_CIPHER_AES_GCM_128: FieldSizes("tls12_crypto_info_aes_gcm_128", 8, 16, 4, 8),
    TLS_CIPHER_AES_GCM_256: FieldSizes("tls12_crypto_info_aes_gcm_256", 8, 32, 4, 8),
    TLS_CIPHER_AES_CCM_128: FieldSizes("tls12_crypto_info_aes_ccm_128", 8, 16, 4, 8),
    TLS_CIPHER_CHACHA20_POLY1305: FieldSizes("tls12_crypto_info_chacha20_poly1305", 12, 32, 0, 8),
    TLS_CIPHER_SM4_GCM: FieldSizes("tls12_crypto_info_sm4_gcm", 8, 16, 4, 8),
    TLS_CIPHER_SM4_CCM: FieldSizes("tls12_crypto_info_sm4_ccm", 8, 16, 4, 8),
    TLS_CIPHER_ARIA_GCM_128: FieldSizes("tls12_crypto_info_aria_gcm_128", 8, 16, 4, 8),
    TLS_CIPHER_ARIA_GCM_256: FieldSizes("tls12_crypto_info_aria_gcm_256", 8, 32, 4, 8),
}
"""cipher_type -> struct name and field sizes (``TLS_CIPHER_*_{IV,KEY,SALT,REC_SEQ}_SIZE``)."""

TAG_SIZE: Final = 16
"""``TLS_CIPHER_*_TAG_SIZE``: 16 for every cipher in the 7.3 header."""


class UapiError(KtlskitError):
    """A crypto_info could not be packed or parsed (unknown cipher type, wrong sizes)."""


def _cdef_source() -> str:
    parts = ["struct tls_crypto_info { uint16_t version; uint16_t cipher_type; };"]
    for sizes in CIPHER_FIELD_SIZES.values():
        members = " ".join(
            f"unsigned char {field}[{getattr(sizes, field)}];" for field in FIELD_ORDER
        )
        parts.append(f"struct {sizes.struct_name} {{ struct tls_crypto_info info; {members} }};")
    return "\n".join(parts)


def _module_path(src: str) -> Path:
    """Where ``prepare_ffi_module()`` writes cffi's parsed form of ``src``: named by its
    digest, so a changed cdef never loads an old module."""
    digest = hashlib.sha256(src.encode()).hexdigest()[:16]
    return Path(__file__).with_name("_cffi") / f"uapi_{digest}.py"


def _load_ffi() -> Any:
    """The FFI of the structs: from the module the host prepared, or by parsing the cdef.

    Parsing needs pycparser: 1.4 s of every Python start in a TCG guest that imports this
    module (the call seam's calls, the offload cases), against milliseconds on the host. The
    host writes the parsed form before a guest starts (``Guest.start``); a guest, or a remote
    machine without it, parses as before.
    """
    src = _cdef_source()
    path = _module_path(src)
    if path.is_file():
        spec = importlib.util.spec_from_file_location(f"ktlskit._cffi.{path.stem}", path)
        if spec is not None and spec.loader is not None:
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module.ffi
    import cffi  # the parse needs cffi's Python half (and pycparser): only here

    parsed = cffi.FFI()
    parsed.cdef(src)
    return parsed


def prepare_ffi_module() -> Path:
    """Write cffi's parsed form of the structs next to this module (out-of-line ABI mode: it
    loads with ``_cffi_backend`` alone). Idempotent; the write is atomic."""
    src = _cdef_source()
    path = _module_path(src)
    if path.is_file():
        return path
    path.parent.mkdir(exist_ok=True)
    import cffi

    builder = cffi.FFI()
    builder.cdef(src)
    builder.set_source(f"ktlskit._cffi.{path.stem}", None)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp")
    with contextlib.redirect_stdout(io.StringIO()):  # cffi prints "generating FILE"
        builder.emit_python_code(str(tmp))
    os.replace(tmp, path)
    return path


ffi: Final = _load_ffi()


def struct_name(cipher_type: int) -> str:
    """C struct tag (without ``struct``) used for ``cipher_type``."""
    try:
        return CIPHER_FIELD_SIZES[cipher_type].struct_name
    except KeyError:
        known = ", ".join(str(c) for c in CIPHER_FIELD_SIZES)
        raise UapiError(f"unknown kTLS cipher_type {cipher_type} (known: {known})") from None


def struct_size(cipher_type: int) -> int:
    """``sizeof(struct tls12_crypto_info_*)`` for ``cipher_type``: the exact setsockopt optlen."""
    return int(ffi.sizeof(f"struct {struct_name(cipher_type)}"))


def field_layout(cipher_type: int) -> dict[str, tuple[int, int]]:
    """Field name -> (offset, size) for the struct of ``cipher_type``, including the header."""
    cname = f"struct {struct_name(cipher_type)}"
    sizes = CIPHER_FIELD_SIZES[cipher_type]
    layout = {
        "version": (int(ffi.offsetof(cname, "info", "version")), 2),
        "cipher_type": (int(ffi.offsetof(cname, "info", "cipher_type")), 2),
    }
    for field in FIELD_ORDER:
        layout[field] = (int(ffi.offsetof(cname, field)), getattr(sizes, field))
    return layout


@dataclass(frozen=True)
class CryptoInfo:
    """One direction's kernel crypto parameters, as given to or read back from ``TLS_TX/RX``.

    ``iv`` is the struct's ``iv`` member: for TLS 1.3 (and ChaCha20 in TLS 1.2) the part of the
    per-connection nonce after ``salt``; for TLS 1.2 GCM/CCM the next explicit nonce the kernel
    will put on the wire.  Readback returns the kernel's current ``iv`` and ``rec_seq``, which
    advance as records flow.
    """

    version: int
    cipher_type: int
    key: bytes
    iv: bytes
    salt: bytes
    rec_seq: bytes

    def pack(self) -> bytes:
        """The struct bytes, exactly ``struct_size(cipher_type)`` long."""
        return pack_crypto_info(
            self.version, self.cipher_type, self.key, self.iv, self.salt, self.rec_seq
        )

    @property
    def rec_seq_int(self) -> int:
        """``rec_seq`` as the integer record number (big-endian on the wire and in the struct)."""
        return int.from_bytes(self.rec_seq, "big")


def _check_field(cipher_type: int, field: str, value: bytes) -> None:
    want = getattr(CIPHER_FIELD_SIZES[cipher_type], field)
    if len(value) != want:
        raise UapiError(
            f"{field} for {struct_name(cipher_type)} must be {want} bytes, got {len(value)}"
        )


def pack_crypto_info(
    version: int, cipher_type: int, key: bytes, iv: bytes, salt: bytes, rec_seq: bytes
) -> bytes:
    """Build the ``tls12_crypto_info_*`` bytes for setsockopt(SOL_TLS, TLS_TX/TLS_RX).

    Sizes are checked against the header; ``version`` is not restricted here (the kernel
    decides), but must fit a ``__u16``.
    """
    cname = struct_name(cipher_type)
    if not 0 <= version <= 0xFFFF:
        raise UapiError(f"version {version:#x} does not fit __u16")
    fields = {"key": key, "iv": iv, "salt": salt, "rec_seq": rec_seq}
    for field, value in fields.items():
        _check_field(cipher_type, field, value)
    cinfo = ffi.new(f"struct {cname} *")
    cinfo.info.version = version
    cinfo.info.cipher_type = cipher_type
    for field, value in fields.items():
        if value:
            ffi.memmove(getattr(cinfo, field), value, len(value))
    return bytes(ffi.buffer(cinfo))


def unpack_crypto_info_header(data: bytes) -> tuple[int, int]:
    """(version, cipher_type) from the first four bytes of a crypto_info."""
    if len(data) < CRYPTO_INFO_HEADER_SIZE:
        raise UapiError(f"crypto_info needs at least 4 bytes, got {len(data)}")
    hdr = ffi.from_buffer("struct tls_crypto_info *", bytearray(data[:CRYPTO_INFO_HEADER_SIZE]))
    return int(hdr.version), int(hdr.cipher_type)


def unpack_crypto_info(data: bytes) -> CryptoInfo:
    """Parse bytes returned by getsockopt(SOL_TLS, TLS_TX/TLS_RX) into a :class:`CryptoInfo`."""
    version, cipher_type = unpack_crypto_info_header(data)
    cname = struct_name(cipher_type)
    size = struct_size(cipher_type)
    if len(data) != size:
        raise UapiError(f"struct {cname} is {size} bytes, got {len(data)}")
    # Slice by offsetof/size rather than ffi.buffer(member): cffi reads a zero-length array
    # (ChaCha's salt[0]) as an open-ended array, not as an empty one.
    layout = field_layout(cipher_type)
    values = {field: bytes(data[off : off + size]) for field, (off, size) in layout.items()}
    return CryptoInfo(
        version=version,
        cipher_type=cipher_type,
        key=values["key"],
        iv=values["iv"],
        salt=values["salt"],
        rec_seq=values["rec_seq"],
    )


def pack_u32_option(value: int) -> bytes:
    """Value for ``TLS_TX_ZEROCOPY_RO`` / ``TLS_RX_EXPECT_NO_PAD`` (a native ``unsigned int``)."""
    return struct.pack("=I", value)


def unpack_u32_option(data: bytes) -> int:
    """Parse a native ``unsigned int``/``int`` option value from getsockopt."""
    if len(data) != 4:
        raise UapiError(f"expected a 4-byte option value, got {len(data)} bytes")
    return int(struct.unpack("=I", data)[0])


def pack_u16_option(value: int) -> bytes:
    """Value for ``TLS_TX_MAX_PAYLOAD_LEN``: the kernel wants optlen == sizeof(u16) exactly."""
    return struct.pack("=H", value)


def unpack_u16_option(data: bytes) -> int:
    """Parse ``TLS_TX_MAX_PAYLOAD_LEN`` readback (a native ``u16``)."""
    if len(data) != 2:
        raise UapiError(f"expected a 2-byte option value, got {len(data)} bytes")
    return int(struct.unpack("=H", data)[0])
