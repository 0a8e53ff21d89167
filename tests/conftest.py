"""Fixtures shared by the host tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ktlskit.hosts.local import LocalHost


@pytest.fixture()
def local_host() -> Iterator[LocalHost]:
    """This machine as a Host; its temporary directory is removed after the test."""
    host = LocalHost()
    yield host
    host.close()
