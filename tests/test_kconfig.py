from pathlib import Path

import pytest

from ktlskit.kernel import kconfig

KCONFIG_DIR = Path(__file__).resolve().parent.parent / "kconfig"


def test_parse_config_later_lines_win() -> None:
    text = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x\"\nCONFIG_A=m\n# comment\n"
    assert kconfig.parse_config(text) == {"CONFIG_A": "m", "CONFIG_B": "n", "CONFIG_C": '"x"'}


def test_check_reports_options_that_did_not_stick() -> None:
    requested = {"CONFIG_TLS": "y", "CONFIG_LKDTM": "y", "CONFIG_KASAN": "n", "CONFIG_X": "n"}
    actual = {"CONFIG_TLS": "y", "CONFIG_KASAN": "n"}
    bad = kconfig.check(requested, actual)
    assert [(m.symbol, m.wanted, m.got) for m in bad] == [("CONFIG_LKDTM", "y", "")]


def test_check_value_mismatch() -> None:
    bad = kconfig.check({"CONFIG_NETDEVSIM": "y"}, {"CONFIG_NETDEVSIM": "m"})
    assert bad[0].got == "m"


def test_profiles_from_the_repo() -> None:
    names = [f.name for f in kconfig.profile_fragments("default", KCONFIG_DIR)]
    assert names == ["vm.config", "ktls.config"]
    assert kconfig.profile_fragments("debug", KCONFIG_DIR)[-1].name == "debug.config"


def test_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(kconfig.KconfigError, match="debug"):
        kconfig.profile_fragments("nosuch", KCONFIG_DIR)


def test_fragments_ask_for_what_ktls_needs() -> None:
    wanted = {}
    for f in kconfig.profile_fragments("debug", KCONFIG_DIR):
        wanted.update(kconfig.parse_config(f.read_text()))
    for sym in ("CONFIG_TLS", "CONFIG_TLS_DEVICE", "CONFIG_NETDEVSIM", "CONFIG_VETH",
                "CONFIG_NET_NS", "CONFIG_IPV6", "CONFIG_CRYPTO_ARIA", "CONFIG_CRYPTO_SM4_GENERIC",
                "CONFIG_CRYPTO_CHACHA20POLY1305", "CONFIG_CRYPTO_CCM", "CONFIG_INET_DIAG",
                "CONFIG_DEBUG_FS", "CONFIG_NET_9P_VIRTIO", "CONFIG_ACPI", "CONFIG_KASAN",
                "CONFIG_PROVE_LOCKING", "CONFIG_DEBUG_KMEMLEAK", "CONFIG_DEBUG_ATOMIC_SLEEP",
                "CONFIG_DEBUG_NET"):
        assert wanted.get(sym) == "y", sym


def test_digest_changes_with_content(tmp_path: Path) -> None:
    f = tmp_path / "a.config"
    f.write_text("CONFIG_A=y\n")
    d1 = kconfig.fragments_digest([f])
    f.write_text("CONFIG_A=n\n")
    assert kconfig.fragments_digest([f]) != d1
