"""The engine simulator fixtures of the test ground's unit tests, for the load's tests over real sockets."""

from tests.unit.testground.conftest import free_port, running

__all__ = ["free_port", "running"]
