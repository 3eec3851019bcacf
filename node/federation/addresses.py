"""Which addresses the outbound federation client may connect to (STYLE.md §16).

A peer's URL comes from another node (a descriptor, an invite), so without a check a node
could be steered into its own loopback, its database host or a cloud metadata service.
Only public unicast addresses are allowed, unless an address is inside a network the
operator listed in ``[federation] allow_networks`` (tests allow ``127.0.0.0/8``).

IPv6 forms that carry an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, 6to4 ``2002::/16``,
NAT64 ``64:ff9b::/96``) are judged by the IPv4 address inside, so ``::ffff:127.0.0.1`` is
loopback. The check runs on IP literals before any connection and on every address a host
name resolves to (``client.GuardedResolver``), so DNS rebinding to 127.0.0.1 is refused too.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Final

__all__ = ["AddressPolicy", "IPAddress", "embedded_ipv4", "is_public", "parse_address"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")


def parse_address(text: str) -> IPAddress | None:
    """An IP address, or None if ``text`` is not one (IPv6 zone ids are kept)."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """A globally routable unicast address, judged by the IPv4 address it carries, if any."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None and not is_public(inner):
            return False
        if inner is not None and address.sixtofour is None:
            return True  # mapped and NAT64 prefixes are private or reserved as such
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


class AddressPolicy:
    """Public addresses, plus those inside the configured networks."""

    def __init__(self, allow_networks: Iterable[str] = ()) -> None:
        self._allowed = tuple(ipaddress.ip_network(text) for text in allow_networks)

    def permits(self, address: IPAddress) -> bool:
        forms: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address):
            inner = embedded_ipv4(address)
            forms += [] if inner is None else [inner]
        if any(form in network for form in forms for network in self._allowed):
            return True
        return is_public(address)
