"""``ktlskit bench traffic`` works in a guest: every mode verified, rekeys happen.

Functional only; the figures come from ``ktlskit bench traffic``, never from a test.
"""

import json
import shlex

from ktlskit.ciphers import by_tls13_suite
from ktlskit.hosts import Host


def test_traffic_bench_runs_all_modes(guest: Host) -> None:
    args = shlex.join(["--bytes", str(2 << 20), "--rekey-every", "16", "--repeat", "1"])
    out = json.loads(guest.run(f"{shlex.quote(guest.python)} -m ktlskit.trafficbench {args}",
                               timeout=600).stdout)
    best = out["best"]
    assert all(best[m]["verified"] for m in ("ssl", "ktls", "ktls-rekey")), best
    assert best["ktls"]["rekeys"] == 0
    # 128 records, a KeyUpdate after every 16th except the last: 7
    assert best["ktls-rekey"]["rekeys"] == 7, best["ktls-rekey"]
    assert len(best["ktls-rekey"]["stalls_ms"]) == 7
    # the same suite both ways: OpenSSL's name for the userspace run, ours for kTLS
    assert by_tls13_suite(best["ssl"]["cipher"]).name == best["ktls"]["cipher"], best
