"""Fixtures of the gateway end-to-end tests."""

from tests.toolkit.fixtures import gateway_http  # noqa: F401
