"""Rendering a scenario report: readable tables, JSON, or KTAP."""

from __future__ import annotations

from . import ktap, table
from .scenario import ScenarioReport


def text(rep: ScenarioReport) -> str:
    s = rep.spec
    d = rep.to_json()
    stalls = d["stall_ms"]
    head = table.render(["scenario", "value"], [
        ("kernel", rep.kernel),
        ("hosts", rep.where),
        ("topology", f"{s.topology}{' + offload' if s.offload else ''}"
                     f"{' (IPv6)' if s.ipv6 else ''}"),
        ("TLS", f"{s.version} {s.cipher}"),
        ("bytes each way", s.nbytes),
        ("rekey every", f"{s.rekey_every} records" if s.rekey_every else "never"),
        ("rekeys tx/rx", f"{d['rekeys']['tx']}/{d['rekeys']['rx']}"),  # type: ignore[index]
        ("stall ms max/mean", f"{stalls['max']}/{stalls['mean']}"),  # type: ignore[index]
        ("throughput Mbit/s", d["throughput_mbps"]),
        ("seconds", rep.seconds),
        ("verdict", rep.verdict.upper()),
    ])
    peers = table.render(
        ["peer", "sent", "received", "records tx", "records rx", "rekeys tx", "rekeys rx",
         "Mbit/s", "ok"],
        [(role, p.get("bytes_sent", 0), p.get("bytes_received", 0), p.get("records_sent", 0),
          p.get("records_received", 0), p.get("tx_rekeys", 0), p.get("rx_rekeys", 0),
          p.get("throughput_mbps", 0.0), "yes" if p.get("ok") else "NO")
         for role, p in sorted(rep.peers.items())])
    if len(rep.counters_by_host) > 1:
        names = sorted({k for d in rep.counters_by_host.values() for k in d})
        hosts = list(rep.counters_by_host)
        counters = table.render(["counter", *hosts, "total"],
                                [(k, *(rep.counters_by_host[h].get(k, 0) for h in hosts),
                                  rep.counters.get(k, "-")) for k in names])
    else:
        counters = table.render(["counter", "delta"], sorted(rep.counters.items()))
    checks = table.render(["check", "result", "detail"],
                          [(c.name, "ok" if c.ok else "FAIL", c.detail) for c in rep.checks])
    socks = table.render(["netns", "local", "peer", "version", "cipher", "tx", "rx"],
                         [(x["netns"] or "-", x["local"], x["peer"], x["version"], x["cipher"],
                           x["txconf"], x["rxconf"]) for x in rep.sockets]) \
        if rep.sockets else "(no kTLS sockets left open at the end)"
    return "\n\n".join([head, peers, checks, counters, socks]) + "\n"


def ktap_text(rep: ScenarioReport) -> str:
    results = [ktap.TestResult(n, c.name.replace(" ", "_"), "pass" if c.ok else "fail")
               for n, c in enumerate(rep.checks, 1)]
    return ktap.write(f"ktlskit run {rep.spec.topology} TLS {rep.spec.version} "
                      f"{rep.spec.cipher}", results)
