"""Machines ktlskit runs kTLS work on, behind one contract (``host.py``).

``Host`` is implemented by the QEMU guest (``ktlskit.guest.Guest``), this machine
(``LocalHost``) and a real machine over SSH (``ktlskit.hosts.sshhost.SshHost``).
``call.py`` runs a ktlskit function on a host and returns its typed result.
Only the contract is imported here: a remote machine has no paramiko.
"""

from .host import (
    Host,
    HostCommandError,
    HostError,
    HostResult,
    HostSplatError,
    HostTimeoutError,
    Process,
)

__all__ = ["Host", "HostCommandError", "HostError", "HostResult", "HostSplatError",
           "HostTimeoutError", "Process"]
