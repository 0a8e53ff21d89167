"""Run a ktlskit function on a host and get its typed result back.

    topo = call(host, topology.setup, "veth", offload=True)     # a Topology
    server = start(host, peer.serve, opts, netns=topo.server_ns)  # running
    result = server.result(timeout=600)                           # a peer.Result

The host runs ``PYTHON -m ktlskit.hosts.call REQUEST`` (REQUEST: JSON naming the function and
its arguments), optionally under ``ip netns exec``; a host with a call server (a guest:
``CallServing``, ``callserver``) runs the same ``serve(REQUEST)`` in a forked worker instead.
Arguments and the return value travel as JSON and are rebuilt into the function's annotated
types (dataclasses, lists, tuples) on each side. The result is the one stdout line tagged
``ktlskit-result:``; a ``KtlskitError`` there comes back as ``RemoteError`` with its type and
message; anything else as ``CallError`` with the output's tail. Only functions of the ktlskit
package can be called.

Stdlib only: this runs on remote machines.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import shlex
import sys
import time
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from ..errors import KtlskitError
from .host import Host, HostError, HostResult, Process

T = TypeVar("T")
RESULT_TAG = "ktlskit-result: "
ERROR_TAG = "ktlskit-error: "
DEFAULT_TIMEOUT = 300.0  # a Python start in a TCG guest on a loaded 2-core host is slow


class CallError(HostError):
    """A ktlskit function on a host did not return a result."""


class RemoteError(CallError):
    """The function raised a KtlskitError there; ``kind`` is its class name."""

    def __init__(self, kind: str, message: str, where: str) -> None:
        self.kind = kind
        self.message = message
        super().__init__(f"{kind} on {where}: {message}")


# ---- JSON in and out ---------------------------------------------------------

def encode(obj: object) -> Any:
    """A JSON value for ``obj``: dataclasses by field (or their ``to_json``), tuples as lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        to_json = getattr(obj, "to_json", None)
        if callable(to_json):
            return encode(to_json())
        return {f.name: encode(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): encode(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [encode(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def decode(hint: Any, value: Any) -> Any:
    """Rebuild ``value`` (from ``encode``) as the type ``hint``; unknown keys are ignored."""
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return decode(options[0], value) if len(options) == 1 else value
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        args = typing.get_args(hint)
        item = args[0] if args else Any
        items = [decode(item, v) for v in value]
        return tuple(items) if tuple in (origin, hint) else items
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        from_json = getattr(hint, "from_json", None)
        if callable(from_json):
            return from_json(value)
        hints = typing.get_type_hints(hint)
        return hint(**{f.name: decode(hints[f.name], value[f.name])
                       for f in dataclasses.fields(hint) if f.init and f.name in value})
    return value


def _check_kwargs(fn: Callable[..., object], kwargs: dict[str, object]) -> None:
    """``netns`` and ``timeout`` are the seam's own: a function cannot take them by name."""
    clash = {"netns", "timeout"} & set(inspect.signature(fn).parameters)
    if clash:
        raise CallError(f"{fn.__qualname__} has a parameter named {', '.join(sorted(clash))}, "
                        "which call()/start() keep for themselves: rename it")


def _qualified(fn: Callable[..., object]) -> str:
    name = f"{fn.__module__}:{fn.__qualname__}"
    if not fn.__module__.startswith("ktlskit.") or "<" in fn.__qualname__:
        raise CallError(f"{name}: only module-level functions of ktlskit can be called")
    return name


def _resolve(name: str) -> Callable[..., object]:
    module, _, qualname = name.partition(":")
    if not module.startswith("ktlskit.") or not qualname or "<" in qualname:
        raise CallError(f"not a ktlskit function: {name!r}")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return typing.cast(Callable[..., object], obj)


# ---- the caller's side -------------------------------------------------------

@typing.runtime_checkable
class CallServing(Protocol):
    """A host with a fork server for calls (a guest: ``callserver``), which saves the Python
    start of each call. ``served`` returns None when the server cannot take the call now; the
    call then runs as ``command()``."""

    def served(self, request: str, netns: str, command: str,
               timeout: float | None) -> Process | None: ...


def request_json(fn: Callable[..., object], args: Sequence[object] = (),
                 kwargs: dict[str, object] | None = None) -> str:
    """What ``serve()`` takes: the function's name and its arguments, as JSON."""
    _check_kwargs(fn, kwargs or {})
    return json.dumps({"fn": _qualified(fn), "args": encode(list(args)),
                       "kwargs": encode(kwargs or {})})


def command(host: Host, fn: Callable[..., object], args: Sequence[object] = (),
            kwargs: dict[str, object] | None = None, netns: str = "") -> str:
    """The shell command that runs ``fn(*args, **kwargs)`` on ``host`` (in ``netns``)."""
    request = request_json(fn, args, kwargs)
    line = f"{shlex.quote(host.python)} -m ktlskit.hosts.call {shlex.quote(request)}"
    return f"ip netns exec {shlex.quote(netns)} {line}" if netns else line


def _served(host: Host, fn: Callable[..., object], args: Sequence[object],
            kwargs: dict[str, object], netns: str, timeout: float | None) -> Process | None:
    if not isinstance(host, CallServing):
        return None
    return host.served(request_json(fn, args, kwargs), netns,
                       command(host, fn, args, kwargs, netns), timeout)


def result_of(host: Host, fn: Callable[..., T], res: HostResult) -> T:
    """The typed return value of ``fn`` from the output of its run on ``host``."""
    for line in reversed(res.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            hint = typing.get_type_hints(fn).get("return", Any)
            return typing.cast(T, decode(hint, json.loads(line[len(RESULT_TAG):])))
        if line.startswith(ERROR_TAG):
            err = json.loads(line[len(ERROR_TAG):])
            raise RemoteError(err["type"], err["message"], host.name)
    tail = "\n".join((res.stdout + res.stderr).splitlines()[-30:])
    raise CallError(f"{fn.__module__}.{fn.__qualname__} on {host.name} returned no result "
                    f"(exit {res.rc}):\n{tail}")


def call(host: Host, fn: Callable[..., T], *args: object, netns: str = "",
         timeout: float = DEFAULT_TIMEOUT, **kwargs: object) -> T:
    """``fn(*args, **kwargs)`` on ``host``, its result as ``fn`` annotates it."""
    served = _served(host, fn, args, kwargs, netns, timeout)
    if served is not None:
        return result_of(host, fn, served.wait(timeout + 15, check=False))
    res = host.run(command(host, fn, args, kwargs, netns), timeout=timeout, check=False)
    return result_of(host, fn, res)


class Pending(Generic[T]):
    """A call running in the background (``start``): its output so far, then its result."""

    def __init__(self, host: Host, fn: Callable[..., T], process: Process) -> None:
        self.host = host
        self.fn = fn
        self.process = process

    def await_text(self, text: str, timeout: float, who: str) -> None:
        """Wait until the function printed ``text`` on stderr (a progress line)."""
        deadline = time.monotonic() + timeout
        while text not in self.process.stderr:
            if not self.process.running():
                raise CallError(f"{who} on {self.host.name} exited early:\n"
                                f"{self.process.stdout}{self.process.stderr}")
            if time.monotonic() > deadline:
                raise CallError(f"{who} on {self.host.name} did not say {text!r} within "
                                f"{timeout:.0f}s:\n{self.process.stderr[-2000:]}")
            time.sleep(0.05)

    def result(self, timeout: float) -> T:
        return result_of(self.host, self.fn, self.process.wait(timeout, check=False))

    def kill(self) -> None:
        self.process.kill()


def start(host: Host, fn: Callable[..., T], *args: object, netns: str = "",
          timeout: float | None = None, **kwargs: object) -> Pending[T]:
    """Start ``fn(*args, **kwargs)`` on ``host`` without waiting for it."""
    served = _served(host, fn, args, kwargs, netns, timeout)
    if served is not None:
        return Pending(host, fn, served)
    return Pending(host, fn, host.spawn(command(host, fn, args, kwargs, netns),
                                        timeout=timeout))


# ---- the callee's side: python -m ktlskit.hosts.call REQUEST -------------------

def serve(request: str) -> int:
    req = json.loads(request)
    try:
        fn = _resolve(req["fn"])
        hints = typing.get_type_hints(fn)
        bound = inspect.signature(fn).bind(*req["args"], **req["kwargs"])
        for name, value in bound.arguments.items():
            bound.arguments[name] = decode(hints.get(name, Any), value)
        result = fn(*bound.args, **bound.kwargs)
    except KtlskitError as exc:
        print(ERROR_TAG + json.dumps({"type": type(exc).__name__, "message": str(exc)}),
              flush=True)
        return 1
    print(RESULT_TAG + json.dumps(encode(result)), flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m ktlskit.hosts.call REQUEST-JSON", file=sys.stderr)
        sys.exit(2)
    sys.exit(serve(sys.argv[1]))
