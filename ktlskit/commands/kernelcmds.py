"""``ktlskit kernel fetch|build`` and ``ktlskit patches check|export``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import table
from ..kernel import source
from ..patchchecks import export, patchset, report, runner
from ..pipeline import build_lock, ensure_kernel
from ..progress import say
from .common import add_kernel_options, kernel_options, print_json


def register(sub: argparse._SubParsersAction) -> None:
    k = sub.add_parser("kernel", help="fetch and build the guest kernel")
    ksub = k.add_subparsers(dest="kernel_command", required=True, metavar="ACTION")
    f = ksub.add_parser("fetch", help="fetch the kernel source (default: Debian linux-source)")
    f.add_argument("--kernel-src", metavar="PATH", help="use this tree or tarball instead")
    f.set_defaults(func=cmd_fetch)
    b = ksub.add_parser("build", help="configure and build bzImage with the patch series")
    add_kernel_options(b)
    b.add_argument("--until", metavar="NAME",
                   help="only patches/series up to and including the sub-series NAME (a "
                        "directory of patches/, e.g. tls-offload), into its own tree and build "
                        "directory (PROFILE-until-NAME)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_build)

    p = sub.add_parser("patches", help="the patch series in patches/")
    psub = p.add_subparsers(dest="patches_command", required=True, metavar="ACTION")
    c = psub.add_parser("check", help="netdev CI (NIPA) checks on every patch, locally")
    add_kernel_options(c)
    _add_series_option(c)
    c.add_argument("--no-build", action="store_true",
                   help="skip the W=1 builds (they report cannot-run)")
    c.add_argument("--no-clang", action="store_true", help="skip the clang build")
    c.add_argument("--waivers", metavar="FILE",
                   help="waiver file (default: waivers.toml next to the series)")
    out = c.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON object on stdout")
    out.add_argument("--ktap", action="store_true", help="KTAP on stdout")
    c.add_argument("--list", action="store_true", help="list the checks and exit")
    c.set_defaults(func=cmd_patches_check)

    e = psub.add_parser("export", help="the series as format-patch files for git send-email")
    e.add_argument("dir", metavar="DIR", help="output directory (one subdirectory per series)")
    e.add_argument("--kernel-src", metavar="PATH", help="kernel tree or tarball (the base)")
    _add_series_option(e)
    e.add_argument("--tree", choices=("net", "net-next"),
                   help="target tree in the subjects (default: the one the stored subjects "
                        "name, else net with Fixes:, else net-next)")
    e.add_argument("--reroll", type=int, default=1, metavar="N", help="version N (-vN)")
    e.add_argument("--force", action="store_true", help="replace patches already in DIR")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_patches_export)


def _add_series_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--series", metavar="PATH",
                   help="a series file, or a directory of git format-patch files "
                        "(default patches/series)")


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
        ("up to", args.until or "(the whole series)"),
        ("bzImage", str(res.bzimage)),
        ("seconds", res.seconds),
    ]))
    return 0


def cmd_patches_check(args: argparse.Namespace) -> int:
    if args.list:
        print("\n".join(["patch checks:", *runner.PATCH_CHECKS, "series checks:",
                         *sorted(runner.ALL_CHECKS - set(runner.PATCH_CHECKS))]))
        return 0
    ps = patchset.load(Path(args.series) if args.series else None)
    opts = runner.CheckOptions(profile=args.profile, build=not args.no_build,
                               clang=not args.no_clang,
                               waiver_file=Path(args.waivers) if args.waivers else None)
    with build_lock():
        src = source.resolve(args.kernel_src)
        rep = runner.run(src, ps, opts)
    if args.json:
        print_json(report.to_json(rep))
    elif args.ktap:
        print(report.to_ktap(rep), end="")
    else:
        print(report.render(rep))
    return 0 if rep.ok else 1


def cmd_patches_export(args: argparse.Namespace) -> int:
    if args.reroll < 1:
        raise export.ExportError(f"--reroll {args.reroll}: versions start at 1")
    ps = patchset.load(Path(args.series) if args.series else None)
    src = source.resolve(args.kernel_src)
    done = export.export(ps, src, Path(args.dir).resolve(), force=args.force,
                         version=args.reroll, tree_override=args.tree)
    for d in done:
        say(f"base-commit for {d.name}: {d.base} ({d.base_note})")
    if args.json:
        print_json([{"series": d.name, "directory": str(d.directory),
                     "files": [str(f) for f in d.files], "tree": d.tree, "base": d.base,
                     "base_note": d.base_note, "to": list(d.to), "cc": list(d.cc)}
                    for d in done])
        return 0
    print(table.render(["series", "tree", "files", "to", "cc", "directory"],
                       [(d.name, d.tree, len(d.files), len(d.to), len(d.cc), d.directory)
                        for d in done]))
    for d in done:
        print(f"git send-email {d.directory}/*.patch")
    return 0
