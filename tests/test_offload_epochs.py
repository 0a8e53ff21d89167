"""netdevsim's ``tls/epochs`` file, as patches/tls-rekey writes it."""

import pytest

from ktlskit.offload.netns import CaseFailure
from ktlskit.offload.rekey import Epoch, parse_epochs

# two TX keys of one connection, then an RX key the device never used (sample output)
TIMED = """\
0 tx 2795541402 131393 1056893221046 1057403316290
1 tx 2795672795 131393 1057411008117 1057925532961
2 rx 3312290818 0 0 0
"""


def test_timed_epochs() -> None:
    got = parse_epochs(TIMED)
    assert got[0] == Epoch(0, "tx", 2795541402, 131393, 1056893221046, 1057403316290)
    assert [e.direction for e in got] == ["tx", "tx", "rx"]
    assert got[2].nbytes == got[2].first_ns == got[2].last_ns == 0


def test_untimed_epochs_from_an_older_series() -> None:
    (e,) = parse_epochs("7 rx 100 4096\n")
    assert (e.index, e.direction, e.start_seq, e.nbytes, e.first_ns) == (7, "rx", 100, 4096, 0)


@pytest.mark.parametrize("line", ["0 tx 1", "0 up 1 2", "0 tx 1 2 3", "x tx 1 2"])
def test_bad_line_is_named(line: str) -> None:
    with pytest.raises(CaseFailure, match="unexpected line"):
        parse_epochs(line + "\n")
