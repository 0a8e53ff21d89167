"""The compilers the per-patch builds use: gcc, and clang when a new enough one is installed."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..shell import CommandError, cmd

LLVM_TOOLS = ("clang", "ld.lld", "llvm-ar", "llvm-nm", "llvm-objcopy", "llvm-readelf",
              "llvm-strip")


@dataclass(frozen=True)
class Toolchain:
    name: str  # "gcc" or "clang"
    make_vars: tuple[str, ...]
    version: str


@dataclass(frozen=True)
class Unavailable:
    why: str


def gcc() -> Toolchain | Unavailable:
    if not shutil.which("gcc"):
        return Unavailable("gcc is not installed")
    ver = _first_line(["gcc", "--version"])
    cc = "ccache gcc" if shutil.which("ccache") else "gcc"
    return Toolchain("gcc", (f"CC={cc}", f"HOSTCC={cc}"), ver)


def min_llvm(tree: Path) -> tuple[int, ...]:
    """The tree's minimum LLVM for x86 (``scripts/min-tool-version.sh llvm``)."""
    script = tree / "scripts/min-tool-version.sh"
    if not script.is_file():
        return (0,)
    res = cmd(["sh", script, "llvm"], timeout=30, check=False,
              env={"SRCARCH": "x86", "ARCH": "x86_64"})
    return _version(res.stdout) or (0,)


def clang(tree: Path) -> Toolchain | Unavailable:
    """The newest clang-NN (or plain clang) with its LLVM tools, if the tree accepts it."""
    want = min_llvm(tree)
    suffixes = [f"-{n}" for n in range(30, 12, -1)] + [""]
    seen = []
    for suffix in suffixes:
        if not shutil.which(f"clang{suffix}"):
            continue
        ver = _version(_first_line([f"clang{suffix}", "--version"]))
        seen.append(f"clang{suffix} {'.'.join(map(str, ver))}")
        if ver < want:
            continue
        missing = [t + suffix for t in LLVM_TOOLS if not shutil.which(t + suffix)]
        if missing:
            seen[-1] += f" (without {', '.join(missing)})"
            continue
        cc = f"clang{suffix}"
        if shutil.which("ccache"):
            cc = f"ccache {cc}"
        llvm = suffix or "1"
        return Toolchain("clang", (f"LLVM={llvm}", f"CC={cc}", f"HOSTCC={cc}"),
                         _first_line([f"clang{suffix}", "--version"]))
    need = ".".join(map(str, want))
    found = "; found " + ", ".join(seen) if seen else "; none installed"
    return Unavailable(f"no clang >= {need} with lld and the LLVM tools (the tree's minimum)"
                       f"{found}; ./setup.sh installs one")


def _first_line(argv: list[str]) -> str:
    try:
        res = cmd(argv, timeout=30, check=False, env={"LC_ALL": "C", **_path_env()})
    except CommandError:
        return ""
    return (res.stdout or res.stderr).splitlines()[0].strip() if (res.stdout or res.stderr) \
        else ""


def _path_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "")}


def _version(text: str) -> tuple[int, ...]:
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(x) for x in m.groups() if x is not None) if m else ()
