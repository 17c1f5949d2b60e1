"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.fakes.operator import InProcessOperator


@pytest.fixture
def operator() -> Iterator[InProcessOperator]:
    """The real reconcile of backend ml/chat, in-process, on an empty fake cluster."""
    with InProcessOperator() as running:
        yield running
