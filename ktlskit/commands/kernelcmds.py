"""``ktlskit kernel fetch|build`` and ``ktlskit patches check``."""

from __future__ import annotations

import argparse

from .. import table
from ..kernel import patchcheck, series, source
from ..pipeline import ensure_kernel
from .common import add_kernel_options, kernel_options, print_json


def register(sub: argparse._SubParsersAction) -> None:
    k = sub.add_parser("kernel", help="fetch and build the guest kernel")
    ksub = k.add_subparsers(dest="kernel_command", required=True, metavar="ACTION")
    f = ksub.add_parser("fetch", help="fetch the kernel source (default: Debian linux-source)")
    f.add_argument("--kernel-src", metavar="PATH", help="use this tree or tarball instead")
    f.set_defaults(func=cmd_fetch)
    b = ksub.add_parser("build", help="configure and build bzImage with the patch series")
    add_kernel_options(b)
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_build)

    p = sub.add_parser("patches", help="the patch series in patches/")
    psub = p.add_subparsers(dest="patches_command", required=True, metavar="ACTION")
    c = psub.add_parser("check", help="checkpatch --strict and a build after each patch")
    add_kernel_options(c)
    c.add_argument("--series", metavar="FILE", help="series file (default patches/series)")
    c.add_argument("--no-build", action="store_true", help="checkpatch only")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_patches_check)


def cmd_fetch(args: argparse.Namespace) -> int:
    src = source.resolve(args.kernel_src)
    print(f"kernel source: {src.describe()}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    src, res = ensure_kernel(kernel_options(args))
    if args.json:
        print_json({"source": source.source_info(src), "build": res.to_json()})
        return 0
    print(table.render(["what", "value"], [
        ("kernel", src.describe()),
        ("profile", res.profile),
        ("series", res.series_digest or "(empty)"),
        ("bzImage", str(res.bzimage)),
        ("seconds", res.seconds),
    ]))
    return 0


def cmd_patches_check(args: argparse.Namespace) -> int:
    from pathlib import Path

    src = source.resolve(args.kernel_src)
    ser = series.load(Path(args.series) if args.series else None)
    results = patchcheck.check_series(src, ser, profile=args.profile, build=not args.no_build)
    if args.json:
        print_json([r.to_json() for r in results])
    else:
        print(table.render(["patch", "checkpatch", "errors", "warnings", "checks", "build"],
                           [r.row() for r in results]))
    return 0 if all(r.ok for r in results) else 1
