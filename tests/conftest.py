"""Shared fixtures: ``kube_cluster`` for the e2e tests (see hack/testground)."""

from testground.pytest_fixtures import kube_cluster

__all__ = ["kube_cluster"]
