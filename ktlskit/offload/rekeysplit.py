"""A record header split across a raw and a device-decrypted frame, at an RX key switch.

The client writes records sealed in user space (``ktlskit.records``) on a plain TCP socket,
one ``send`` per frame, each smaller than one segment (TCP_NODELAY, a pause after each), so
the frames on the wire are the ones chosen here, whatever TSO would have made of them. The
server reads with RX offload on port b and installs key 1 at the KeyUpdate. The device passes
up raw a frame in which a record ends that fails authentication (a key-1 record while it still
has key 0), and decrypts the others. TLS 1.3; R0, R1 under key 0, N1, N2, N3 under key 1.

``at_switch``: ``R0 R1 KU N1[:HEAD]`` (decrypted), install (the device, in N1's body, will
switch at its end), ``N1[HEAD:] N2[:SPLIT]`` (raw: N1 fails), ``N2[SPLIT:]`` (key 1), ``N3``.
N2's header lies across a raw and a decrypted frame: the stack must take N2 as a record
under key 1, from where it starts. N1 is the mixed record of any rekey window.

``after_key_update``: ``R0 R1 KU N1[:SPLIT]`` (decrypted), ``N1[SPLIT:]`` (raw: N1 fails),
``N2[:HEAD]`` (decrypted under key 0), install (switch at N2's end), ``N2[HEAD:]`` (raw),
``N3`` (key 1). N1's header lies across the KeyUpdate's decrypted frame and a raw one; N2
is mixed and must be restored with key 0 as the second record of the window.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

from .. import uapi
from ..keyschedule import DirectionState
from ..records import ContentType, RecordProtection, encode_key_update
from . import nsim
from .netns import IO_TIMEOUT, CaseFailure, connect
from .nsim import Counters
from .rekey import offload_only, read_epochs
from .traffic import Facts, Suite, Worker, close_all, err_name, install, recv_record, stream

HEAD = 300  # bytes of a record's start in a frame that ends inside its body
SPLIT = 3  # bytes of a 5-byte header in the first of two frames
PAUSE = 0.3  # seconds after each frame, so that the next one is a frame of its own
SIZES = (300, 300, 800, 800, 800)
"""Plaintext bytes of R0, R1 (key 0) and N1, N2, N3 (key 1): every frame under 1,000 bytes,
one segment at the link's MTU of 1,500."""

Frames = tuple[list[bytes], int]
"""The frames, and how many of them go out before the reader installs key 1."""


def _records(ab: DirectionState) -> tuple[list[bytes], list[bytes]]:
    """(R0, R1, KU, N1, N2, N3 sealed, the five data plaintexts)."""
    prot = RecordProtection(ab)
    plain = [stream(90 + i, n) for i, n in enumerate(SIZES)]
    sealed = [prot.seal(ContentType.APPLICATION_DATA, p) for p in plain[:2]]
    sealed.append(prot.seal(ContentType.HANDSHAKE, encode_key_update(False)))
    prot.rekey(ab.next())
    sealed += [prot.seal(ContentType.APPLICATION_DATA, p) for p in plain[2:]]
    return sealed, plain


def at_switch(r: list[bytes], split: int) -> Frames:
    """N2's header ``split`` bytes into the raw frame that ends N1 (0: whole in the next)."""
    r0, r1, ku, n1, n2, n3 = r
    return [r0 + r1 + ku + n1[:HEAD], n1[HEAD:] + n2[:split], n2[split:], n3], 1


def after_key_update(r: list[bytes]) -> Frames:
    """N1's header split between the KeyUpdate's frame and a raw one; N2 mixed."""
    r0, r1, ku, n1, n2, n3 = r
    return [r0 + r1 + ku + n1[:SPLIT], n1[SPLIT:], n2[:HEAD], n2[HEAD:], n3], 3


def _send(c: socket.socket, frames: Frames, sent: threading.Event,
          installed: threading.Event) -> None:
    out, before = frames
    for n, frame in enumerate(out):
        if n == before:
            sent.set()
            if not installed.wait(IO_TIMEOUT):
                raise CaseFailure("the reader did not install key 1 in time")
        c.sendall(frame)
        time.sleep(PAUSE)


def _read(s: socket.socket, ab: DirectionState, plain: list[bytes], sent: threading.Event,
          installed: threading.Event) -> Facts:
    """Each data record read alone; the KeyUpdate, read once the frames before the install
    are out, installs key 1."""
    got: list[bytes] = []
    try:
        for n, data in enumerate(plain):
            if n == 2:
                if not sent.wait(IO_TIMEOUT):
                    raise CaseFailure("the sender did not send the first frames in time")
                time.sleep(PAUSE)
                kind, _ = recv_record(s)
                if kind != ContentType.HANDSHAKE:
                    raise CaseFailure(f"read a record of type {kind} where the KeyUpdate is")
                install(s, uapi.TLS_RX, ab.next())
                installed.set()
            got.append(recv_record(s, len(data))[1])
    except OSError as exc:
        return {"records_read": len(got), "error": err_name(exc), "intact": False}
    finally:
        installed.set()  # the sender is never left waiting
    return {"records_read": len(got), "error": None, "intact": got == plain}


def _split_header(suite: Suite, layout: Callable[[list[bytes]], Frames]) -> Facts:
    """The frames of ``layout`` towards port b (RX offload only)."""
    if suite.version != "1.3":
        raise CaseFailure("a KeyUpdate needs TLS 1.3")
    nsim.setup(knobs=True)
    offload_only("b")
    before = Counters.read()
    c, s = connect()
    ab, _ = suite.states()
    install(s, uapi.TLS_RX, ab)
    sealed, plain = _records(ab)
    frames = layout(sealed)
    sent, installed = threading.Event(), threading.Event()
    sender = Worker(lambda: _send(c, frames, sent, installed))
    facts: Facts = {"frames": [len(f) for f in frames[0]], "install_after": frames[1]}
    facts["read"] = _read(s, ab, plain, sent, installed)
    facts["sender"] = "ok"
    try:
        sender.result()
    except (OSError, CaseFailure) as exc:
        facts["sender"] = err_name(exc)
    close_all(c, s)
    facts["delta"] = Counters.settled().since(before)
    facts["epochs_b"] = read_epochs("b")
    return facts


def case_rx_rekey_split_header(suite: Suite, nbytes: int) -> Facts:
    """N2's header split across the raw frame that ends N1 and the decrypted one of N2's
    body, at the device's key switch (``nbytes``: not used)."""
    return _split_header(suite, lambda r: at_switch(r, SPLIT))


def case_rx_rekey_whole_header(suite: Suite, nbytes: int) -> Facts:
    """The control of ``rx-rekey-split-header``: N2's header whole in a decrypted frame."""
    return _split_header(suite, lambda r: at_switch(r, 0))


def case_rx_rekey_split_first(suite: Suite, nbytes: int) -> Facts:
    """The header of the first record after the KeyUpdate split across the KeyUpdate's
    decrypted frame and a raw one, and a mixed record behind it."""
    return _split_header(suite, after_key_update)


REKEY_SPLIT_CASES = {"rx-rekey-split-header": case_rx_rekey_split_header,
                     "rx-rekey-whole-header": case_rx_rekey_whole_header,
                     "rx-rekey-split-first": case_rx_rekey_split_first}
