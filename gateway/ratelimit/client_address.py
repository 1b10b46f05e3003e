"""The client address anonymous requests are keyed by: the socket peer, or — only when that
peer is a configured trusted proxy — the nearest untrusted address in ``X-Forwarded-For``.

Walking the header from the right and stopping at the first address that is not one of our
proxies is what nginx's ``real_ip_recursive on`` does: everything left of that point was
written by the client and proves nothing, so a client cannot choose its own key."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from gateway.ratelimit_api import ClientAddressResolver, Scope, socket_peer

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(specs: Iterable[str]) -> tuple[Network, ...]:
    """``["10.0.0.0/8", "127.0.0.1"]`` → networks (a bare address is a /32 or /128)."""
    return tuple(ipaddress.ip_network(s.strip(), strict=False) for s in specs if s.strip())


def _parse(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "192.0.2.1:5000"
        text = text.split(":", 1)[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _trusted(addr: Address, networks: tuple[Network, ...]) -> bool:
    return any(addr.version == net.version and addr in net for net in networks)


def client_address(scope: Scope, trusted_networks: tuple[Network, ...]) -> str:
    """The address to key an anonymous request by (see the module docstring)."""
    peer_text = socket_peer(scope)
    if not trusted_networks:
        return peer_text
    peer = _parse(peer_text)
    if peer is None or not _trusted(peer, trusted_networks):
        return peer_text
    forwarded = b",".join(
        value for name, value in scope.get("headers", ()) if name == b"x-forwarded-for"
    )
    current = peer
    for hop in reversed(forwarded.decode("latin-1").split(",")):
        addr = _parse(hop)
        if addr is None:
            # A trusted proxy passed on garbage: the proxy itself is all we can vouch for.
            break
        current = addr
        if not _trusted(addr, trusted_networks):
            break
    return str(current)


def make_resolver(trusted_proxies: Iterable[str]) -> ClientAddressResolver:
    """A resolver for ``app.state.client_address`` honouring ``trusted_proxies``."""
    networks = parse_networks(trusted_proxies)
    if not networks:
        return socket_peer

    def resolve(scope: Scope) -> str:
        return client_address(scope, networks)

    return resolve
