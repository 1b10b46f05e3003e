"""The client address of anonymous requests: X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.ratelimit.client_address import client_address, make_resolver, parse_networks
from gateway.ratelimit_api import socket_peer

TRUSTED = parse_networks(["10.0.0.0/8", "127.0.0.1", "fd00::/8"])


def scope(peer: str, *xff: str) -> dict[str, Any]:
    return {
        "type": "http",
        "client": (peer, 5000),
        "headers": [(b"host", b"x"), *((b"x-forwarded-for", v.encode()) for v in xff)],
    }


class TestClientAddress:
    def test_spoofed_header_from_untrusted_peer_changes_nothing(self) -> None:
        assert client_address(scope("203.0.113.7", "1.2.3.4"), TRUSTED) == "203.0.113.7"

    def test_trusted_proxy_forwards_the_client(self) -> None:
        assert client_address(scope("10.1.2.3", "198.51.100.9"), TRUSTED) == "198.51.100.9"

    def test_client_prepended_values_are_ignored(self) -> None:
        # The client sent "1.2.3.4"; our proxy appended the address it saw.
        s = scope("10.1.2.3", "1.2.3.4, 198.51.100.9")
        assert client_address(s, TRUSTED) == "198.51.100.9"

    def test_chain_of_trusted_proxies_is_walked(self) -> None:
        s = scope("127.0.0.1", "1.2.3.4, 198.51.100.9, 10.9.9.9")
        assert client_address(s, TRUSTED) == "198.51.100.9"

    def test_several_header_lines_are_one_list(self) -> None:
        s = scope("10.1.2.3", "1.2.3.4", "198.51.100.9, 10.0.0.5")
        assert client_address(s, TRUSTED) == "198.51.100.9"

    def test_all_trusted_gives_the_leftmost(self) -> None:
        assert client_address(scope("10.1.2.3", "10.0.0.1, 10.0.0.2"), TRUSTED) == "10.0.0.1"

    @pytest.mark.parametrize("junk", ["", "not-an-ip", "unknown", "1.2.3.4.5"])
    def test_garbage_from_a_trusted_proxy_stops_at_the_proxy(self, junk: str) -> None:
        assert client_address(scope("10.1.2.3", junk), TRUSTED) == "10.1.2.3"

    def test_garbage_left_of_the_client_is_irrelevant(self) -> None:
        s = scope("10.1.2.3", "evil, 198.51.100.9")
        assert client_address(s, TRUSTED) == "198.51.100.9"

    def test_ports_brackets_and_ipv6(self) -> None:
        assert client_address(scope("10.1.2.3", "198.51.100.9:4711"), TRUSTED) == "198.51.100.9"
        assert client_address(scope("fd00::1", "[2001:db8::5]:443"), TRUSTED) == "2001:db8::5"
        assert client_address(scope("10.1.2.3", "::ffff:198.51.100.9"), TRUSTED) == ("198.51.100.9")

    def test_no_header_from_trusted_proxy_is_the_proxy(self) -> None:
        assert client_address(scope("10.1.2.3"), TRUSTED) == "10.1.2.3"

    def test_no_client_in_scope(self) -> None:
        assert client_address({"type": "http", "headers": []}, TRUSTED) == "unknown"


class TestResolver:
    def test_no_trusted_proxies_is_the_socket_peer(self) -> None:
        assert make_resolver([]) is socket_peer

    def test_resolver_uses_the_networks(self) -> None:
        resolve = make_resolver(["10.0.0.0/8"])
        assert resolve(scope("10.0.0.1", "198.51.100.9")) == "198.51.100.9"
        assert resolve(scope("192.0.2.1", "198.51.100.9")) == "192.0.2.1"
