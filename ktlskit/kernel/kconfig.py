"""Kernel configuration: tinyconfig + the project's fragments + olddefconfig.

A profile is a list of fragments from ``kconfig/``: ``default`` is
``vm.config`` + ``ktls.config``; any other profile NAME adds ``NAME.config``.
After olddefconfig every requested option is checked; one that did not stick
(a missing dependency, a typo, a symbol the tree lacks) is an error naming it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..errors import KtlskitError
from ..shell import cmd

BASE_FRAGMENTS = ("vm.config", "ktls.config")


class KconfigError(KtlskitError):
    """A profile is unknown or its options did not make it into .config."""


@dataclass(frozen=True)
class Mismatch:
    symbol: str
    wanted: str
    got: str  # "" when the symbol is absent


def profile_fragments(profile: str, kconfig_dir: Path | None = None) -> list[Path]:
    d = kconfig_dir or paths.project_dir() / "kconfig"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", profile):
        raise KconfigError(f"profile {profile!r}: a profile is a name (NAME for "
                           f"kconfig/NAME.config), not a path")
    names = list(BASE_FRAGMENTS) + ([] if profile == "default" else [f"{profile}.config"])
    frags = [d / n for n in names]
    missing = [f.name for f in frags if not f.is_file()]
    if missing:
        known = sorted(p.stem for p in d.glob("*.config") if p.name not in BASE_FRAGMENTS)
        raise KconfigError(f"profile {profile!r}: missing {', '.join(missing)} in {d}; "
                           f"profiles: default, {', '.join(known)}")
    return frags


def parse_config(text: str) -> dict[str, str]:
    """``CONFIG_X=v`` and ``# CONFIG_X is not set`` lines; later lines win."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        m = re.fullmatch(r"(CONFIG_\w+)=(.*)", line)
        if m:
            out[m[1]] = m[2]
            continue
        m = re.fullmatch(r"# (CONFIG_\w+) is not set", line)
        if m:
            out[m[1]] = "n"
    return out


def check(requested: dict[str, str], actual: dict[str, str]) -> list[Mismatch]:
    """Options whose final value differs from the one requested."""
    bad = []
    for sym, want in requested.items():
        got = actual.get(sym, "")
        if want == "n" and got in ("", "n"):
            continue
        if got != want:
            bad.append(Mismatch(sym, want, got))
    return bad


def fragments_digest(frags: list[Path]) -> str:
    h = hashlib.sha256()
    for f in frags:
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def configure(tree: Path, build_dir: Path, frags: list[Path],
              make_vars: Sequence[str] = ()) -> None:
    """Write ``build_dir/.config``; skipped when the fragments did not change.

    ``make_vars`` (e.g. ``LLVM=-19``) select the toolchain the config is made for.
    """
    stamp = build_dir / ".ktlskit-kconfig"
    digest = fragments_digest(frags)
    if make_vars:
        digest += "+" + hashlib.sha256("\0".join(make_vars).encode()).hexdigest()[:16]
    if (build_dir / ".config").is_file() and stamp.is_file() and stamp.read_text() == digest:
        return
    build_dir.mkdir(parents=True, exist_ok=True)
    make = ["make", "-C", tree, f"O={build_dir}", "-s", *make_vars]
    cmd([*make, "tinyconfig"], timeout=600)
    requested: dict[str, str] = {}
    with (build_dir / ".config").open("a") as cfg:
        for f in frags:
            text = f.read_text()
            cfg.write(f"\n# ---- ktlskit: {f.name}\n{text}")
            requested.update(parse_config(text))
    cmd([*make, "olddefconfig"], timeout=600)
    bad = check(requested, parse_config((build_dir / ".config").read_text()))
    if bad:
        lines = "\n".join(f"  {m.symbol}: wanted {m.wanted}, got {m.got or 'unset'}"
                          for m in bad)
        raise KconfigError(f"{len(bad)} requested option(s) did not stick in "
                           f"{build_dir / '.config'}:\n{lines}")
    stamp.write_text(digest)
