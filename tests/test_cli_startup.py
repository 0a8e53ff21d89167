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


def test_a_guest_command_loads_only_its_own_command_module() -> None:
    """``ktlskit exec`` builds the parser of its module alone: no benchmark code is imported
    before the guest starts."""
    code = ("import sys; from ktlskit import cli; cli.parser('exec').parse_args(['exec', '--', "
            "'true']); print(' '.join(sorted(m for m in sys.modules if m.startswith("
            "'ktlskit.commands.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout.split()
    assert "ktlskit.commands.guestcmds" in out
    assert not {"ktlskit.commands.bench", "ktlskit.commands.runcmd"} & set(out), out


def test_every_command_is_mapped_to_the_module_that_registers_it() -> None:
    from ktlskit import cli
    full = cli.parser()
    sub = next(a for a in full._actions if a.dest == "command")
    assert set(sub.choices) == set(cli.COMMANDS)  # type: ignore[arg-type]
    for name, module in cli.COMMANDS.items():
        one = cli.parser(name)
        only = next(a for a in one._actions if a.dest == "command")
        assert name in only.choices, (name, module)  # type: ignore[operator]
