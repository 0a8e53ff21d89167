"""``ktlskit lab up|down|status``: two guests of the built kernel as two real machines."""

from __future__ import annotations

import argparse

from .. import lab
from ..guest import GuestConfig
from ..pipeline import ensure_kernel
from ..progress import say
from .common import add_kernel_options, kernel_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lab", help="two guests joined by a virtual Ethernet link, reached "
                                   "like real machines (ktlskit run --env LAB.config)")
    s = p.add_subparsers(dest="lab_action", required=True)
    u = s.add_parser("up", help="build if needed, boot both guests, write lab.config")
    add_kernel_options(u)
    u.add_argument("--cpus", type=int, default=1, help="CPUs per guest (default 1)")
    u.add_argument("--memory", default="1G", help="memory per guest (default 1G)")
    u.add_argument("--idle-timeout", type=float, default=lab.IDLE_TIMEOUT, metavar="S",
                   help=f"the guests power off S seconds after boot (default "
                        f"{lab.IDLE_TIMEOUT:.0f})")
    u.set_defaults(func=cmd_up)
    d = s.add_parser("down", help="power the lab's guests off")
    d.set_defaults(func=cmd_down)
    st = s.add_parser("status", help="print the running lab's env file")
    st.set_defaults(func=cmd_status)


def cmd_up(args: argparse.Namespace) -> int:
    if args.idle_timeout <= 0:
        raise lab.LabError(f"--idle-timeout {args.idle_timeout}: seconds, more than 0")
    GuestConfig(cpus=args.cpus, memory=args.memory).check()  # before any build
    _, kb = ensure_kernel(kernel_options(args))
    rec = lab.up(kb.bzimage, args.cpus, args.memory, args.idle_timeout)
    print(rec.env_file)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    splats = lab.down()
    for s in splats:
        say(f"the lab's console showed a kernel splat: {s}")
    return 1 if splats else 0


def cmd_status(args: argparse.Namespace) -> int:
    rec = lab.current()
    if rec is None:
        say("no lab is running (ktlskit lab up)")
        return 1
    print(rec.env_file)
    return 0
