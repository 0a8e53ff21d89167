"""Host side of ``ktlskit bench traffic``: the guest's raw rounds -> summary, table, plot.

The guest (``ktlskit.trafficbench``) reports every round's raw figures; everything derived —
spreads, per-round ratios, fractions of the crypto limit, the stall against the key install,
warnings — is computed here from them, so the JSON keeps both and a reader can recompute.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import benchplot, table
from .benchstats import Comparison, Spread, compare

MODE_LABELS = {"ssl": "ssl (OpenSSL in user space)", "ktls": "ktls",
               "ktls-rekey": "ktls + KeyUpdates"}
LIMIT_LABELS = {"kernel": "crypto: kernel AEAD", "kernel-lib": "crypto: kernel lib",
                "openssl": "crypto: openssl", "openssl-no-aesni": "crypto: openssl, no AES-NI"}
LIMIT_OF = {"ssl": "openssl", "ktls": "kernel", "ktls-rekey": "kernel"}


def host_info() -> dict[str, Any]:
    """What the figures depend on outside the guest: load, CPU, cores."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f
                          if ln.startswith("model name")), "")
    except OSError:
        pass
    return {"loadavg": [round(x, 2) for x in os.getloadavg()], "cpu": model,
            "cpus": os.cpu_count() or 0}


def clock_line(host: dict[str, Any]) -> str:
    """Which clock the guest's MB/s and seconds were taken on (``--icount`` or wall time)."""
    if host.get("icount"):
        return (f"clock: QEMU -icount {host['icount']}: the guest's time counts executed "
                "instructions (idle time jumps to the next timer), so MB/s do not depend on "
                "the host's load (not cycles: caches and memory are not modelled)")
    return "clock: wall time of the TCG/KVM guest (shared with everything the host runs)"


def per_round(raw: dict[str, Any], section: str, name: str, key: str) -> list[float] | None:
    """``round[section][name][key]`` for every round; None when a round lacks it."""
    out = []
    for rnd in raw["round_data"]:
        item = rnd.get(section, {}).get(name)
        if not isinstance(item, dict) or key not in item:
            return None
        out.append(float(item[key]))
    return out


@dataclass
class TrafficSummary:
    rates: dict[str, Spread] = field(default_factory=dict)
    limits: dict[str, Spread] = field(default_factory=dict)
    implementations: dict[str, str] = field(default_factory=dict)
    fractions: dict[str, Comparison] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)
    stall: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"mbytes_per_s": {k: v.to_json() for k, v in self.rates.items()},
                "crypto_limit_mbytes_per_s": {k: {**v.to_json(),
                                                  "implementation": self.implementations[k]}
                                              for k, v in self.limits.items()},
                "fraction_of_crypto_limit": {k: v.to_json() for k, v in self.fractions.items()},
                "comparisons": [c.to_json() for c in self.comparisons],
                "stall": self.stall, "warnings": self.warnings}


def _stall(raw: dict[str, Any]) -> tuple[dict[str, Any], Comparison | None]:
    stalls, installs, derives, gaps = [], [], [], []
    for rnd in raw["round_data"]:
        t = rnd["transfers"]["ktls-rekey"]
        if t["stalls_ms"]:
            stalls.append(statistics.median(t["stalls_ms"]))
            installs.append(statistics.median(rnd["key_install_us"]) / 1000)
            derives.append(statistics.median(rnd.get("key_derive_us") or [0.0]) / 1000)
            gaps.append(t["gap_ms"])
    if not stalls:
        return {"note": "no KeyUpdate happened (stream shorter than --rekey-every records)"}, None
    k = compare("KeyUpdate stall / key install", stalls, installs)
    return {"stall_ms": Spread.of(stalls).to_json(4),
            "key_install_ms": Spread.of(installs).to_json(4),
            "key_derive_ms": Spread.of(derives).to_json(4),
            "record_gap_ms": Spread.of(gaps).to_json(4),
            "stall_vs_install": k.to_json()}, k


def summarize(raw: dict[str, Any]) -> TrafficSummary:
    s = TrafficSummary()
    for mode in MODE_LABELS:
        rates = per_round(raw, "transfers", mode, "mbytes_per_s")
        if rates is not None:
            s.rates[mode] = Spread.of(rates)
    for name in LIMIT_LABELS:
        rates = per_round(raw, "limits", name, "mbytes_per_s")
        if rates is not None:
            s.limits[name] = Spread.of(rates)
            s.implementations[name] = raw["round_data"][0]["limits"][name]["implementation"]
    for mode, lim in LIMIT_OF.items():
        if mode in s.rates and lim in s.limits:
            s.fractions[mode] = compare(f"{mode} / {lim} crypto limit",
                                        _rates(raw, mode), _limits(raw, lim), reference=None)
    pairs = [("kTLS / ssl", "transfers", "ktls", "transfers", "ssl"),
             ("kTLS+KeyUpdates / kTLS", "transfers", "ktls-rekey", "transfers", "ktls"),
             ("crypto alone: kernel AEAD / openssl", "limits", "kernel", "limits", "openssl"),
             ("openssl / openssl without AES-NI", "limits", "openssl", "limits",
              "openssl-no-aesni")]
    for label, sa, a, sb, b in pairs:
        num, den = per_round(raw, sa, a, "mbytes_per_s"), per_round(raw, sb, b, "mbytes_per_s")
        if num is not None and den is not None:
            s.comparisons.append(compare(label, num, den))
    s.stall, k = _stall(raw)
    s.warnings = [c.warning for c in [*s.comparisons, *([k] if k else [])] if c.warning]
    return s


def _rates(raw: dict[str, Any], mode: str) -> list[float]:
    return per_round(raw, "transfers", mode, "mbytes_per_s") or []


def _limits(raw: dict[str, Any], name: str) -> list[float]:
    return per_round(raw, "limits", name, "mbytes_per_s") or []


# ---- text -------------------------------------------------------------------------------------

def header(raw: dict[str, Any], host: dict[str, Any], accel: str) -> list[str]:
    cpu = raw.get("cpu", {})
    aead = raw.get("kernel_aead", {})
    in_use = ", ".join(aead.get("in_use", [])) or "? (no refcnt moved)"
    best = aead.get("candidates", [])
    prio = next((c["priority"] for c in best if c["driver"] in aead.get("in_use", [])), "?")
    others = ", ".join(c["driver"] for c in best if c["driver"] not in aead.get("in_use", []))
    lines = [f"kernel {raw['kernel']} under {accel}, guest CPU {cpu.get('model', '?')!r} "
             f"x{cpu.get('cpus', '?')} (kernel sees: {' '.join(cpu.get('flags', [])) or 'none'})",
             f"host: {host.get('cpu', '?')} x{host.get('cpus', '?')}, load average "
             f"{' '.join(map(str, host.get('loadavg_before', [])))} before, "
             f"{' '.join(map(str, host.get('loadavg_after', [])))} after",
             f"cipher {raw['cipher']}: kTLS took kernel AEAD {aead.get('name', '?')} = {in_use} "
             f"(priority {prio}; other candidates: {others or 'none'})"]
    ossl = raw.get("openssl")
    if ossl:
        caps = [k for k, v in ossl["ia32cap"].items() if v]
        lines.append(f"{ossl['version'].split(' (')[0]} detected: {' '.join(caps) or 'none'} "
                     f"({ossl['ia32cap_raw']})")
    return lines


def _limit_label(name: str, s: TrafficSummary) -> str:
    return f"{LIMIT_LABELS[name]} [{s.implementations.get(name, '?')}]"


def render(raw: dict[str, Any], s: TrafficSummary, host: dict[str, Any], accel: str) -> str:
    rows: list[Sequence[object]] = []
    for mode, spread in s.rates.items():
        frac = s.fractions.get(mode)
        extra = ""
        if mode == "ktls-rekey":
            rekeys = {t["transfers"][mode]["rekeys"] for t in raw["round_data"]}
            extra = f"{'/'.join(map(str, sorted(rekeys)))} KeyUpdates per transfer"
        rows.append((MODE_LABELS[mode], spread.text(),
                     f"{frac.spread.text()} of {LIMIT_OF[mode]}" if frac else "-", extra))
    for name, spread in s.limits.items():
        rows.append((_limit_label(name, s), spread.text(), "", "16 KiB records, 1 CPU"))
    out = header(raw, host, accel)
    out.append(f"{raw['rounds']} interleaved rounds, {raw['bytes']} bytes per transfer; "
               "figures are median (min..max) over the rounds")
    out += ["", table.render(["what", "MB/s", "fraction of the crypto limit", "note"], rows), ""]
    out += [c.text() for c in s.comparisons]
    out += stall_lines(s.stall)
    out += [f"warning: {w}" for w in s.warnings]
    return "\n".join(out) + "\n"


def stall_lines(stall: dict[str, Any]) -> list[str]:
    if "stall_ms" not in stall:
        return [f"KeyUpdate stall: {stall.get('note', 'not measured')}"]
    st, ki, kd, gap, k = (stall["stall_ms"], stall["key_install_ms"], stall["key_derive_ms"],
                          stall["record_gap_ms"], stall["stall_vs_install"])
    return [f"KeyUpdate stall (receiver, KeyUpdate read -> next data): median "
            f"{st['median']:.3f} ms ({st['min']:.3f}..{st['max']:.3f}) = {k['median']:.1f}x the "
            f"bare setsockopt(TLS_RX) key install ({ki['median'] * 1000:.1f} us; "
            f"{k['min']:.1f}..{k['max']:.1f}x per round)",
            f"  for scale: a read without KeyUpdate waits {gap['median']:.3f} ms; deriving the "
            f"next key in user space (both peers do it per KeyUpdate) takes "
            f"{kd['median'] * 1000:.1f} us"]


# ---- plot -------------------------------------------------------------------------------------

def plot(raw: dict[str, Any], s: TrafficSummary, path: Path) -> Path:
    """Throughput per mode with spread, the crypto limits, and the stall distribution."""
    fig = benchplot.figure(1, 3, (5.6, 4.4))
    ax_t, ax_l, ax_s = fig.axes
    modes = list(s.rates)
    benchplot.spread_bars(ax_t, modes, [s.rates[m] for m in modes],
                          [_rates(raw, m) for m in modes], "MB/s",
                          f"transfers, {raw['rounds']} rounds")
    names = list(s.limits)
    benchplot.spread_bars(ax_l, [n.replace("-", "\n") for n in names],
                          [s.limits[n] for n in names], [_limits(raw, n) for n in names],
                          "MB/s", f"crypto limit ({raw['cipher']}, 16 KiB, 1 CPU)")
    stalls = [x for r in raw["round_data"] for x in r["transfers"]["ktls-rekey"]["stalls_ms"]]
    installs = [x / 1000 for r in raw["round_data"] for x in r.get("key_install_us", [])]
    derives = [x / 1000 for r in raw["round_data"] for x in r.get("key_derive_us", [])]
    gaps = [r["transfers"]["ktls-rekey"]["gap_ms"] for r in raw["round_data"]]
    floor = statistics.median(installs) if installs else None
    benchplot.distribution(ax_s, {"KeyUpdate\nstall": stalls, "read without\nKeyUpdate": gaps,
                                  "key\nderivation": derives, "key\ninstall": installs}, "ms",
                           floor, "key install (median)", "KeyUpdate stall vs its floor")
    fig.suptitle(f"ktlskit bench traffic: kernel {raw['kernel']}, {raw['cipher']}")
    return benchplot.save(fig, path)

