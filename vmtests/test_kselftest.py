"""The kernel's own net/tls selftest, through ``ktlskit kselftest``."""

import json
import subprocess
import sys

import pytest

from ktlskit.kernel.build import BuildResult


@pytest.mark.slow
def test_net_tls_selftest_passes_completely(kernel_build: BuildResult) -> None:
    res = subprocess.run([sys.executable, "-m", "ktlskit.cli", "kselftest", "net/tls", "--json",
                          "--profile", kernel_build.profile],
                         capture_output=True, text=True, timeout=3600, check=False)
    assert res.stdout, res.stderr[-3000:]
    out = json.loads(res.stdout)
    assert out["counts"].get("fail", 0) == 0, out["failed"]
    assert out["counts"]["pass"] > 900, out
    assert out["ok"], res.stderr[-3000:]
    assert res.returncode == 0
