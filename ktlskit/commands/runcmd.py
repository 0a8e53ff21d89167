"""``ktlskit run`` (the main job), ``ktlskit rekey`` and ``ktlskit peer``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .. import ciphers, link, paths, peer, peerrun, report, scenario, topologies
from ..guest import Guest, warm
from ..hosts import Host
from ..hosts.call import call
from ..hosts.netenv import NetEnv
from ..pipeline import ensure_kernel
from ..progress import say, set_quiet
from .common import (
    add_guest_options,
    add_kernel_options,
    add_machine_options,
    guest_config,
    kernel_options,
    net_env,
)

CURRENT = "current-run.json"


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("run", help="the main job: build, boot, run a kTLS scenario, report "
                                   "(or run it on two real machines: --env)")
    add_kernel_options(r)
    add_guest_options(r)
    r.add_argument("--topology", choices=topologies.names(), default=None,
                   help="default: veth in a guest, link with --env")
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
    r.add_argument("--rcvbuf", type=int, default=None, metavar="BYTES",
                   help="SO_RCVBUF of both peers' sockets, 0 for the kernel's autotuning "
                        "(default: 0; 64 KiB with --offload and rekeys, which bounds the "
                        "reader's lag behind a KeyUpdate)")
    r.add_argument("--json", action="store_true", help="one JSON object on stdout")
    r.add_argument("--ktap", action="store_true", help="the checks as KTAP on stdout")
    add_machine_options(r)
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
    p.set_defaults(func=lambda a: peerrun.main(a.args))


def spec_from(args: argparse.Namespace, machines: bool = False) -> scenario.ScenarioSpec:
    if not args.no_rekey and args.rekey_every < 1:
        raise scenario.ScenarioError(f"--rekey-every {args.rekey_every}: a number of records "
                                     "(1 or more); --no-rekey for none")
    topology = args.topology or ("link" if machines else "veth")
    kind = topologies.lookup(topology)
    if machines and kind.machines != 2:
        raise scenario.ScenarioError(f"--topology {topology} is a one-machine topology; with "
                                     "--env the peers run on two machines over the link")
    if not machines and kind.machines == 2:
        raise scenario.ScenarioError(f"--topology {topology} needs two machines: give --env "
                                     "FILE (or --peer and the addresses)")
    rekey = 0 if args.no_rekey else args.rekey_every
    extra = not args.no_rekey and args.tls_version == "1.3"
    rcvbuf = args.rcvbuf
    if rcvbuf is None:
        rcvbuf = scenario.default_rcvbuf(args.offload, bool(rekey or extra))
    return scenario.ScenarioSpec(
        topology=topology, offload=args.offload, version=args.tls_version,
        cipher=args.cipher, nbytes=args.bytes, rekey_every=rekey,
        extra_rekey=extra, ipv6=args.ipv6, rcvbuf=rcvbuf)


def _print(args: argparse.Namespace, rep: scenario.ScenarioReport) -> int:
    if args.json:
        json.dump(rep.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif args.ktap:
        sys.stdout.write(report.ktap_text(rep))
    else:
        sys.stdout.write(report.text(rep))
    say(f"verdict: {rep.verdict}")
    return 0 if rep.verdict == "pass" else 1


def _remember(reopen: dict[str, object]) -> scenario.Started:
    """Write where the running peers' control sockets are, for ``ktlskit rekey``."""
    def started(ctl: dict[str, tuple[Host, str]]) -> None:
        (paths.cache_dir() / CURRENT).write_text(json.dumps(
            {**reopen, "control": {r: p for r, (_, p) in ctl.items()}}) + "\n")
    return started


def cmd_run(args: argparse.Namespace) -> int:
    if args.json or args.ktap:
        set_quiet(False)  # progress stays on stderr; stdout carries only the result
    env = net_env(args)
    spec = spec_from(args, machines=env is not None)
    spec.check()
    if env is not None:
        return _print(args, run_on_machines(env, spec))
    kopts, gcfg = kernel_options(args), guest_config(args)
    src, kb = ensure_kernel(kopts)
    try:
        with warm.guest_for(kb.bzimage, gcfg) as g:
            rep = scenario.run_on(scenario.on_topology(g, spec), spec,
                                  kernel=f"Linux {src.version} ({src.ident}, "
                                         f"profile {kb.profile})",
                                  started=_remember({"boot_dir": str(g.boot_dir)}))
    finally:
        (paths.cache_dir() / CURRENT).unlink(missing_ok=True)
    return _print(args, rep)


@contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so the undo of the machines' changes runs."""
    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _uname(host: Host) -> str:
    return host.run("uname -r", timeout=30).stdout.strip()


def run_on_machines(env: NetEnv, spec: scenario.ScenarioSpec) -> scenario.ScenarioReport:
    """The scenario on the DUT and the remote the env names."""
    link.check_env_options(env, spec.ipv6)
    try:
        with interrupt_on_sigterm(), link.machines(env) as (dut, remote), \
                link.prepared(env, dut, remote, spec.offload) as lk:
            kernel = f"DUT Linux {_uname(dut)}, remote Linux {_uname(remote)}"
            return scenario.run_on(scenario.on_link(lk), spec, kernel,
                                   started=_remember({"env": env.to_text()}))
    finally:
        (paths.cache_dir() / CURRENT).unlink(missing_ok=True)


def cmd_rekey(args: argparse.Namespace) -> int:
    current = paths.cache_dir() / CURRENT
    if not current.is_file():
        raise scenario.ScenarioError("no scenario is running (start one with `ktlskit run`)")
    info = json.loads(current.read_text())
    ctl = info["control"][args.peer]
    if "boot_dir" in info:
        g = Guest.attach(Path(info["boot_dir"]))
        try:
            call(g, peer.send_control, ctl, args.what, timeout=60)
        finally:
            g.detach()
    else:
        env = NetEnv.parse(info["env"], str(current))
        with link.machines(env) as (dut, remote):
            call(dut if args.peer == "client" else remote, peer.send_control, ctl, args.what,
                 timeout=60)
    say(f"rekey {args.what} sent to the {args.peer}")
    return 0
