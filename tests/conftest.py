"""Shared fixtures: ``kube_cluster``, ``gateway_api_crds``, ``prometheus`` and ``real_node`` for the e2e tests
(see hack/testground); and, before the first test, what the selected tests need (see tests/preparation.py)."""

import pytest

from testground.pytest_fixtures import gateway_api_crds, kube_cluster, prometheus, real_node
from tests.preparation import prepare_for

__all__ = ["gateway_api_crds", "kube_cluster", "prometheus", "real_node"]


def pytest_collection_finish(session: pytest.Session) -> None:
    if not session.config.option.collectonly:
        prepare_for(session.items)
