"""``ktlskit run`` (the main job), ``ktlskit rekey`` and ``ktlskit peer``."""

from __future__ import annotations

import argparse
import json
import sys

from .. import ciphers, paths, peer, report, scenario, topologies
from ..guest import Guest, warm
from ..guest.bootdir import connect_existing
from ..pipeline import ensure_kernel
from ..progress import say, set_quiet
from .common import add_guest_options, add_kernel_options, guest_config, kernel_options

CURRENT = "current-run.json"


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("run", help="the main job: build, boot, run a kTLS scenario, report")
    add_kernel_options(r)
    add_guest_options(r)
    r.add_argument("--topology", choices=topologies.names(), default="veth")
    r.add_argument("--offload", action="store_true", help="turn on the devices' TLS offload")
    r.add_argument("--tls-version", choices=("1.2", "1.3"), default="1.3")
    r.add_argument("--cipher", default="aes-gcm-128", metavar="NAME",
                   help=f"one of {', '.join(ciphers.names())}")
    r.add_argument("--bytes", type=int, default=4 << 20, help="bytes each way (default 4 MiB)")
    g = r.add_mutually_exclusive_group()
    g.add_argument("--rekey-every", type=int, default=64, metavar="N",
                   help="rekey every N records in both directions (default 64)")
    g.add_argument("--no-rekey", action="store_true", help="no rekeys at all")
    r.add_argument("--ipv6", action="store_true", help="connect over IPv6")
    r.add_argument("--json", action="store_true", help="one JSON object on stdout")
    r.add_argument("--ktap", action="store_true", help="the checks as KTAP on stdout")
    r.set_defaults(func=cmd_run)

    k = sub.add_parser("rekey", help="trigger a rekey in the running scenario, over SSH")
    k.add_argument("--peer", choices=("client", "server"), default="client")
    d = k.add_mutually_exclusive_group(required=True)
    d.add_argument("--tx", dest="what", action="store_const", const="tx")
    d.add_argument("--rx", dest="what", action="store_const", const="rx")
    d.add_argument("--both", dest="what", action="store_const", const="both")
    k.set_defaults(func=cmd_rekey)

    p = sub.add_parser("peer", help="a kTLS traffic peer (same as python -m ktlskit.peer)",
                       add_help=False)
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=lambda a: peer.main(a.args))


def spec_from(args: argparse.Namespace) -> scenario.ScenarioSpec:
    if not args.no_rekey and args.rekey_every < 1:
        raise scenario.ScenarioError(f"--rekey-every {args.rekey_every}: a number of records "
                                     "(1 or more); --no-rekey for none")
    rekey = 0 if args.no_rekey else args.rekey_every
    return scenario.ScenarioSpec(
        topology=args.topology, offload=args.offload, version=args.tls_version,
        cipher=args.cipher, nbytes=args.bytes, rekey_every=rekey,
        extra_rekey=not args.no_rekey and args.tls_version == "1.3", ipv6=args.ipv6)


def cmd_run(args: argparse.Namespace) -> int:
    if args.json or args.ktap:
        set_quiet(False)  # progress stays on stderr; stdout carries only the result
    spec = spec_from(args)
    spec.check()
    kopts, gcfg = kernel_options(args), guest_config(args)
    src, kb = ensure_kernel(kopts)
    current = paths.cache_dir() / CURRENT
    with warm.guest_for(kb.bzimage, gcfg) as g:
        current.write_text(json.dumps({"boot_dir": str(g.boot_dir),
                                       "guest_dir": scenario.GUEST_DIR}) + "\n")
        try:
            rep = scenario.run(g, spec, kernel=f"Linux {src.version} ({src.ident}, "
                                                f"profile {kb.profile})")
        finally:
            current.unlink(missing_ok=True)
    if args.json:
        json.dump(rep.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif args.ktap:
        sys.stdout.write(report.ktap_text(rep))
    else:
        sys.stdout.write(report.text(rep))
    say(f"verdict: {rep.verdict}")
    return 0 if rep.verdict == "pass" else 1


def cmd_rekey(args: argparse.Namespace) -> int:
    current = paths.cache_dir() / CURRENT
    if not current.is_file():
        raise scenario.ScenarioError("no scenario is running (start one with `ktlskit run`)")
    info = json.loads(current.read_text())
    from pathlib import Path

    ssh = connect_existing(Path(info["boot_dir"]))
    try:
        ctl = f"{info['guest_dir']}/{args.peer}.ctl"
        ssh.run(f"{Guest.python} -m ktlskit.peer control {ctl} {args.what}", timeout=30)
    finally:
        ssh.close()
    say(f"rekey {args.what} sent to the {args.peer}")
    return 0
