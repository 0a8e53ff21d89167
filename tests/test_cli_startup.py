"""What the ``ktlskit`` command loads before it does anything: every exec and run pays it."""

import subprocess
import sys

# Loaded only by the commands that need them (plots; the guest's SSH is needed by most).
HEAVY = ("matplotlib", "numpy")


def test_the_cli_does_not_load_plotting_libraries() -> None:
    code = ("import sys, ktlskit.cli; "
            f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout.strip()
    assert out == "", f"ktlskit.cli imports {out} at startup"


def test_the_reaper_starts_without_ktlskit() -> None:
    """The reaper runs by its path with -I (isolated: no ktlskit on sys.path)."""
    from ktlskit.guest import reaper
    res = subprocess.run([sys.executable, "-I", reaper.__file__], capture_output=True, text=True,
                         timeout=30, check=False)
    assert res.returncode == 2 and "usage: reaper.py" in res.stderr, res.stderr
