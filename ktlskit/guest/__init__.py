"""Guests: boot a built kernel under QEMU through virtme-ng and control it over SSH."""

from ..hosts.host import HostCommandError as GuestCommandError
from ..hosts.host import HostResult as GuestResult
from ..hosts.host import HostTimeoutError as GuestTimeoutError
from .guest import Guest, GuestConfig, boot_timeout
from .local import LocalGuest, running_in_guest
from .watch import GuestError, GuestSplatError

__all__ = ["Guest", "GuestCommandError", "GuestConfig", "GuestError", "GuestResult",
           "GuestSplatError", "GuestTimeoutError", "LocalGuest", "boot_timeout",
           "running_in_guest"]
