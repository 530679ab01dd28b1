"""The client's address behind reverse proxies: X-Forwarded-For is believed only from trusted networks.

Each proxy that forwards a request appends the address it received the request from. Walking the
header right to left and skipping every hop inside a trusted network gives the first address a
trusted proxy saw but did not add itself: the client. A hop count cannot do this, because Knative's
activator and queue-proxy both append (or not, when the activator is out of the path), so the same
count points at a proxy on some requests and at the client on others.

An entry of TRUSTED_PROXIES is a network (`10.0.0.0/8`), an address, or a bare peer name for peers that
are not addresses (Starlette's test client calls itself `testclient`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_PEER_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


@dataclass(frozen=True)
class TrustedProxies:
    networks: tuple[IPNetwork, ...] = ()
    names: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.networks or self.names)

    def trusts(self, peer: str) -> bool:
        if peer in self.names:
            return True
        address = parse_address(peer)
        return address is not None and any(address in network for network in self.networks)


def parse_trusted(entries: Iterable[str]) -> TrustedProxies:
    networks: list[IPNetwork] = []
    names: set[str] = set()
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            if not _PEER_NAME.match(entry):
                raise ValueError(f"TRUSTED_PROXIES: {entry!r} is not a network (CIDR), address or peer name") from None
            names.add(entry)
    return TrustedProxies(tuple(networks), frozenset(names))


def parse_address(text: str) -> IPAddress | None:
    """An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:443`."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def client_address(peer: str, forwarded_for: str | None, trusted: TrustedProxies) -> str:
    """The client's address: the peer, unless the peer is a trusted proxy and X-Forwarded-For says more."""
    if not forwarded_for or not trusted or not trusted.trusts(peer):
        return peer
    client = peer
    for hop in reversed(forwarded_for.split(",")):
        address = parse_address(hop)
        if address is None:
            # Garbage right of every untrusted hop was written by a trusted proxy's client: stop at the last
            # address a trusted party vouched for.
            return client
        client = str(address)
        if not trusted.trusts(client):
            return client
    return client
