"""uapi: struct layout vs. hand-computed sizes and vs. the real header compiled by cffi."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import cffi
import pytest

from ktlskit import uapi
from ktlskit.kernel import source

KNOWN_SIZES = {
    # 4-byte header + iv + key + salt + rec_seq, from the 7.3 header's *_SIZE macros
    uapi.TLS_CIPHER_AES_GCM_128: 4 + 8 + 16 + 4 + 8,
    uapi.TLS_CIPHER_AES_GCM_256: 4 + 8 + 32 + 4 + 8,
    uapi.TLS_CIPHER_AES_CCM_128: 4 + 8 + 16 + 4 + 8,
    uapi.TLS_CIPHER_CHACHA20_POLY1305: 4 + 12 + 32 + 0 + 8,
    uapi.TLS_CIPHER_SM4_GCM: 4 + 8 + 16 + 4 + 8,
    uapi.TLS_CIPHER_SM4_CCM: 4 + 8 + 16 + 4 + 8,
    uapi.TLS_CIPHER_ARIA_GCM_128: 4 + 8 + 16 + 4 + 8,
    uapi.TLS_CIPHER_ARIA_GCM_256: 4 + 8 + 32 + 4 + 8,
}

# name -> value as given in the 7.3.4 include/uapi/linux/tls.h
HEADER_CONSTANTS = {
    "TLS_TX": 1,
    "TLS_RX": 2,
    "TLS_TX_ZEROCOPY_RO": 3,
    "TLS_RX_EXPECT_NO_PAD": 4,
    "TLS_TX_MAX_PAYLOAD_LEN": 5,
    "TLS_1_2_VERSION": 0x0303,
    "TLS_1_3_VERSION": 0x0304,
    "TLS_CIPHER_AES_GCM_128": 51,
    "TLS_CIPHER_AES_GCM_256": 52,
    "TLS_CIPHER_AES_CCM_128": 53,
    "TLS_CIPHER_CHACHA20_POLY1305": 54,
    "TLS_CIPHER_SM4_GCM": 55,
    "TLS_CIPHER_SM4_CCM": 56,
    "TLS_CIPHER_ARIA_GCM_128": 57,
    "TLS_CIPHER_ARIA_GCM_256": 58,
    "TLS_SET_RECORD_TYPE": 1,
    "TLS_GET_RECORD_TYPE": 2,
    "TLS_INFO_VERSION": 1,
    "TLS_INFO_CIPHER": 2,
    "TLS_INFO_TXCONF": 3,
    "TLS_INFO_RXCONF": 4,
    "TLS_INFO_ZC_RO_TX": 5,
    "TLS_INFO_RX_NO_PAD": 6,
    "TLS_INFO_TX_MAX_PAYLOAD_LEN": 7,
    "TLS_CONF_BASE": 1,
    "TLS_CONF_SW": 2,
    "TLS_CONF_HW": 3,
    "TLS_CONF_HW_RECORD": 4,
}


def test_constants_match_the_7_3_header_values() -> None:
    for name, value in HEADER_CONSTANTS.items():
        assert getattr(uapi, name) == value, name
    assert uapi.SOL_TLS == 282
    assert uapi.TCP_ULP == 31
    assert [
        uapi.TLS_RECORD_TYPE_CHANGE_CIPHER_SPEC,
        uapi.TLS_RECORD_TYPE_ALERT,
        uapi.TLS_RECORD_TYPE_HANDSHAKE,
        uapi.TLS_RECORD_TYPE_DATA,
    ] == [20, 21, 22, 23]


@pytest.mark.parametrize("cipher_type", sorted(KNOWN_SIZES))
def test_struct_sizes_and_offsets(cipher_type: int) -> None:
    assert uapi.struct_size(cipher_type) == KNOWN_SIZES[cipher_type]
    layout = uapi.field_layout(cipher_type)
    assert layout["version"] == (0, 2)
    assert layout["cipher_type"] == (2, 2)
    # iv, key, salt, rec_seq follow each other with no padding
    offset = 4
    for field in ("iv", "key", "salt", "rec_seq"):
        assert layout[field][0] == offset, field
        offset += layout[field][1]
    assert offset == KNOWN_SIZES[cipher_type]


def test_chacha_layout_in_detail() -> None:
    layout = uapi.field_layout(uapi.TLS_CIPHER_CHACHA20_POLY1305)
    assert layout["iv"] == (4, 12)
    assert layout["key"] == (16, 32)
    assert layout["salt"] == (48, 0)
    assert layout["rec_seq"] == (48, 8)


def test_pack_matches_an_independent_struct_pack() -> None:
    key, iv, salt, seq = bytes(range(16)), b"\xa0" * 8, b"\x5a" * 4, (7).to_bytes(8, "big")
    packed = uapi.pack_crypto_info(
        uapi.TLS_1_3_VERSION, uapi.TLS_CIPHER_AES_GCM_128, key, iv, salt, seq
    )
    assert packed == struct.pack("=HH8s16s4s8s", 0x0304, 51, iv, key, salt, seq)
    order = "little" if sys.byteorder == "little" else "big"
    assert packed[:2] == (0x0304).to_bytes(2, order)


@pytest.mark.parametrize("cipher_type", sorted(KNOWN_SIZES))
def test_pack_unpack_round_trip(cipher_type: int) -> None:
    sizes = uapi.CIPHER_FIELD_SIZES[cipher_type]
    info = uapi.CryptoInfo(
        version=uapi.TLS_1_2_VERSION,
        cipher_type=cipher_type,
        key=os.urandom(sizes.key),
        iv=os.urandom(sizes.iv),
        salt=os.urandom(sizes.salt),
        rec_seq=(123456789).to_bytes(8, "big"),
    )
    packed = info.pack()
    assert len(packed) == KNOWN_SIZES[cipher_type]
    assert uapi.unpack_crypto_info(packed) == info
    assert uapi.unpack_crypto_info(packed).rec_seq_int == 123456789
    assert uapi.unpack_crypto_info_header(packed[:4]) == (uapi.TLS_1_2_VERSION, cipher_type)


def test_pack_refuses_wrong_sizes_and_unknown_cipher() -> None:
    with pytest.raises(uapi.UapiError, match=r"key .* must be 16 bytes, got 15"):
        uapi.pack_crypto_info(0x0304, 51, bytes(15), bytes(8), bytes(4), bytes(8))
    with pytest.raises(uapi.UapiError, match=r"salt .* must be 0 bytes"):
        uapi.pack_crypto_info(0x0304, 54, bytes(32), bytes(12), bytes(4), bytes(8))
    with pytest.raises(uapi.UapiError, match="unknown kTLS cipher_type 50"):
        uapi.pack_crypto_info(0x0304, 50, bytes(16), bytes(8), bytes(4), bytes(8))
    with pytest.raises(uapi.UapiError, match="__u16"):
        uapi.pack_crypto_info(0x10000, 51, bytes(16), bytes(8), bytes(4), bytes(8))


def test_unpack_refuses_wrong_lengths() -> None:
    packed = uapi.pack_crypto_info(0x0304, 51, bytes(16), bytes(8), bytes(4), bytes(8))
    with pytest.raises(uapi.UapiError, match="is 40 bytes, got 39"):
        uapi.unpack_crypto_info(packed[:-1])
    with pytest.raises(uapi.UapiError, match="at least 4"):
        uapi.unpack_crypto_info(packed[:3])


def test_option_values() -> None:
    assert uapi.unpack_u32_option(uapi.pack_u32_option(1)) == 1
    assert len(uapi.pack_u16_option(4096)) == 2
    assert uapi.unpack_u16_option(uapi.pack_u16_option(4096)) == 4096
    with pytest.raises(uapi.UapiError):
        uapi.unpack_u16_option(b"\x00")


# --- the real header, compiled -------------------------------------------------------------

_FIELDS = ("iv", "key", "salt", "rec_seq")


def _kernel_tree() -> Path | None:
    """KTLSKIT_KERNEL_SRC, else the default kernel fetched into this cache (KTLSKIT_CACHE)."""
    if "KTLSKIT_KERNEL_SRC" in os.environ:
        return Path(os.environ["KTLSKIT_KERNEL_SRC"]).expanduser()
    return source.fetched_default_tree()


def _headers() -> dict[str, Path | None]:
    system = Path("/usr/include/linux/tls.h")
    root = _kernel_tree()
    tree = root / "include/uapi/linux/tls.h" if root is not None else None
    return {
        "system": system if system.is_file() else None,
        "kernel-tree": tree if tree is not None and tree.is_file() else None,
    }


def _c_source(header_text: str) -> tuple[str, str]:
    rows = []
    for sizes in uapi.CIPHER_FIELD_SIZES.values():
        s = f"struct {sizes.struct_name}"
        cells = [f"sizeof({s})", f"offsetof({s}, info.version)", f"offsetof({s}, info.cipher_type)"]
        for field in _FIELDS:
            cells += [f"offsetof({s}, {field})", f"sizeof((({s} *)0)->{field})"]
        rows.append("{" + ", ".join(cells) + "}")
    # Macros and enum members alike: an identifier the header does not mention becomes -1.
    consts = [name if re.search(rf"\b{name}\b", header_text) else "-1" for name in HEADER_CONSTANTS]
    ncols = 3 + 2 * len(_FIELDS)
    source = "\n".join(
        [
            "#include <stddef.h>",
            "#include <linux/tls.h>",
            f"static const long layout[{len(rows)}][{ncols}] = {{ {', '.join(rows)} }};",
            f"static const long consts[{len(consts)}] = {{ {', '.join(consts)} }};",
            "static long ktls_layout(int row, int col) { return layout[row][col]; }",
            "static long ktls_const(int i) { return consts[i]; }",
            "static long ktls_header_size(void) { return sizeof(struct tls_crypto_info); }",
        ]
    )
    cdef = "long ktls_layout(int, int); long ktls_const(int); long ktls_header_size(void);"
    return cdef, source


def _build(tmp_path: Path, header: Path, tag: str) -> ModuleType:
    """Compile against ``header`` alone: it is copied to <tmp>/inc/linux/tls.h so the rest of
    the include path (linux/types.h, Python.h's system headers) stays the system's."""
    inc = tmp_path / "inc"
    (inc / "linux").mkdir(parents=True)
    text = header.read_text()
    shutil.copyfile(header, inc / "linux/tls.h")
    cdef, source = _c_source(text)
    builder = cffi.FFI()
    builder.cdef(cdef)
    modname = f"_ktlskit_tls_layout_{tag.replace('-', '_')}"
    extra: list[str] = []
    if not Path("/usr/include/linux/types.h").is_file():
        # no libc kernel headers: let the tree's uapi provide linux/types.h and friends
        uapi_dir = _kernel_tree() / "include/uapi"
        extra = ["-idirafter", str(uapi_dir), "-D__EXPORTED_HEADERS__"]
    builder.set_source(modname, source, include_dirs=[str(inc)], extra_compile_args=extra)
    built = builder.compile(tmpdir=str(tmp_path), verbose=False)
    spec = importlib.util.spec_from_file_location(modname, built)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _layout_mismatches(lib: object) -> list[str]:
    problems = []
    if lib.ktls_header_size() != uapi.CRYPTO_INFO_HEADER_SIZE:  # type: ignore[attr-defined]
        problems.append("sizeof(struct tls_crypto_info)")
    for row, (cipher_type, sizes) in enumerate(uapi.CIPHER_FIELD_SIZES.items()):
        ncols = 3 + 2 * len(_FIELDS)
        header = [lib.ktls_layout(row, col) for col in range(ncols)]  # type: ignore[attr-defined]
        ours = uapi.field_layout(cipher_type)
        expected = [uapi.struct_size(cipher_type), ours["version"][0], ours["cipher_type"][0]]
        for field in _FIELDS:
            expected += list(ours[field])
        if header != expected:
            problems.append(f"struct {sizes.struct_name}: header {header} != ours {expected}")
    return problems


@pytest.mark.parametrize("which", ["system", "kernel-tree"])
def test_layout_matches_compiled_header(which: str, tmp_path: Path) -> None:
    headers = _headers()
    if all(h is None for h in headers.values()):
        pytest.skip("no linux/tls.h: neither /usr/include nor KTLSKIT_KERNEL_SRC/include/uapi")
    header = headers[which]
    if header is None:
        pytest.skip(f"{which} linux/tls.h not present (the other header is checked)")
    lib = _build(tmp_path, header, which).lib
    assert _layout_mismatches(lib) == []
    missing = []
    for index, (name, value) in enumerate(HEADER_CONSTANTS.items()):
        got = lib.ktls_const(index)
        if got == -1:
            missing.append(name)
            continue
        assert got == value == getattr(uapi, name), name
    if which == "kernel-tree":
        assert missing == [], f"7.3 header lacks {missing}"
    else:
        # older libc headers predate TLS_TX_MAX_PAYLOAD_LEN; nothing else may be missing
        assert set(missing) <= {"TLS_TX_MAX_PAYLOAD_LEN", "TLS_INFO_TX_MAX_PAYLOAD_LEN"}


def test_compiled_header_check_catches_a_layout_change(tmp_path: Path) -> None:
    """The check is not vacuous: a header with a different AES-GCM-128 IV size must mismatch."""
    header = next((h for h in _headers().values() if h is not None), None)
    if header is None:
        pytest.skip("no linux/tls.h to mutate")
    text = header.read_text()
    mutated, count = re.subn(r"(#define\s+TLS_CIPHER_AES_GCM_128_IV_SIZE\s+)8\b", r"\g<1>12", text)
    assert count == 1
    fake = tmp_path / "src" / "tls.h"
    fake.parent.mkdir()
    fake.write_text(mutated)
    lib = _build(tmp_path / "build", fake, "mutated").lib
    problems = _layout_mismatches(lib)
    assert len(problems) == 1 and "aes_gcm_128" in problems[0]


def test_the_prepared_ffi_module_loads_without_pycparser_and_matches_the_parsed_cdef() -> None:
    """What a guest loads (the module the host wrote) describes the same structs as the cdef
    parsed by cffi, member by member, and importing it needs no pycparser."""
    path = uapi.prepare_ffi_module()
    assert path == uapi.prepare_ffi_module()  # idempotent
    probe = ("import sys, ktlskit.uapi as u; print(type(u.ffi).__module__, "
             "'pycparser' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60, check=True)
    assert res.stdout.split() == ["_cffi_backend", "False"]
    prepared = uapi._load_ffi()
    assert type(prepared).__module__ == "_cffi_backend"
    parsed = cffi.FFI()
    parsed.cdef(uapi._cdef_source())
    names = ["tls_crypto_info", *(s.struct_name for s in uapi.CIPHER_FIELD_SIZES.values())]
    for name in names:
        ctype = f"struct {name}"
        assert prepared.sizeof(ctype) == parsed.sizeof(ctype), name
        fields = [f for f, _ in parsed.typeof(ctype).fields]
        assert [f for f, _ in prepared.typeof(ctype).fields] == fields, name
        for f in fields:
            assert prepared.offsetof(ctype, f) == parsed.offsetof(ctype, f), (name, f)
