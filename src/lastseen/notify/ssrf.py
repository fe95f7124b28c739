"""Server-side request forgery guard: where a webhook may send.

A URL's host is resolved and *every* address it resolves to must be public: not
loopback, private (RFC 1918, ULA), link-local (cloud metadata lives there),
multicast, reserved, unspecified or shared (CGNAT). The check runs when a
subscription is created *and* before every send, against the very address the
request then connects to (the sender pins it), so a name that later re-resolves
to an internal address (DNS rebinding) is refused too. ``--webhook-allow-private``
lifts the check; ``webhook_allow`` admits chosen networks only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from lastseen.errors import LastseenError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Seconds a resolution may take before the URL is refused.
RESOLVE_TIMEOUT = 3.0
_SHARED = ipaddress.ip_network("100.64.0.0/10")


class DestinationRefused(LastseenError):
    """A webhook URL points where the hub may not send."""

    code = "webhook_destination_refused"
    http_status = 403


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    allow_private: bool = False
    allow: tuple[IPNetwork, ...] = ()

    @classmethod
    def of(cls, allow_private: bool, networks: Sequence[str]) -> AddressPolicy:
        return cls(allow_private, tuple(ipaddress.ip_network(n, strict=False) for n in networks))

    def permits(self, address: IPAddress) -> bool:
        """Pure: may the hub connect to ``address``?"""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if self.allow_private or any(address in net for net in self.allow):
            return True
        return address.is_global and not (
            address.is_multicast
            or address.is_reserved
            or address.is_unspecified
            or address in _SHARED
        )


async def resolve(url: str, policy: AddressPolicy) -> tuple[str, int, IPAddress]:
    """The host, port and the (first) permitted address to connect to; refuses when
    the name does not resolve or any of its addresses is not permitted."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT):
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, port, type=socket.SOCK_STREAM
                )
        except (OSError, TimeoutError, UnicodeError) as exc:
            raise DestinationRefused(
                f"cannot resolve {host!r}: {exc}", code="webhook_unresolvable"
            ) from None
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        if not policy.permits(address):
            raise DestinationRefused(
                f"{host} resolves to {address}, a loopback, private, link-local or reserved "
                "address (allow it with --webhook-allow-private or webhook_allow)"
            )
    if not addresses:  # pragma: no cover - getaddrinfo raises instead
        raise DestinationRefused(f"cannot resolve {host!r}", code="webhook_unresolvable")
    return host, port, addresses[0]
