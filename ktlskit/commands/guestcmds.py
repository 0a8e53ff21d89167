"""``ktlskit boot`` (interactive shell) and ``ktlskit exec -- CMD``."""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys

from ..guest import Guest
from ..pipeline import ensure_kernel
from .common import add_guest_options, add_kernel_options, guest_config, kernel_options


def register(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("boot", help="build if needed, boot, and open a shell in the guest")
    add_kernel_options(b)
    add_guest_options(b)
    b.set_defaults(func=cmd_boot)
    e = sub.add_parser("exec", help="boot, run one command in the guest, print its output")
    add_kernel_options(e)
    add_guest_options(e)
    e.add_argument("--timeout", type=float, default=600, help="seconds (default 600)")
    e.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND ...")
    e.set_defaults(func=cmd_exec)


def cmd_boot(args: argparse.Namespace) -> int:
    gcfg = guest_config(args)
    _, kb = ensure_kernel(kernel_options(args))
    with Guest.boot(kb.bzimage, gcfg) as g:
        print(f"guest console: {g.console_path}", file=sys.stderr)
        return subprocess.call(g.ssh_argv())


def cmd_exec(args: argparse.Namespace) -> int:
    argv = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    if not argv:
        raise SystemExit("ktlskit exec: give a command after --")
    command = argv[0] if len(argv) == 1 else shlex.join(argv)
    gcfg = guest_config(args)
    _, kb = ensure_kernel(kernel_options(args))
    with Guest.boot(kb.bzimage, gcfg) as g:
        res = g.run(command, timeout=args.timeout, check=False)
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    return res.rc
