"""One HTTP attempt of one delivery: resolve and check the address, pin it, post, time it.

The request connects to the address the SSRF check approved (the URL's host is
replaced by it; ``Host`` and TLS SNI/certificate checks keep the real name), so a
second resolution cannot take the request elsewhere. Redirects are not followed
(they would leave the checked address); environment proxies are ignored. Only the
first ``RESPONSE_CAP`` bytes of an answer are read.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

import httpx

from lastseen import __version__
from lastseen.notify.models import Attempt, Delivery, Subscription
from lastseen.notify.payloads import sign
from lastseen.notify.policy import RESPONSE_CAP, cap_response
from lastseen.notify.ssrf import AddressPolicy, DestinationRefused, resolve

USER_AGENT = f"lastseen/{__version__} (webhooks)"


def signed_headers(
    subscription: Subscription, delivery: Delivery, timestamp: int
) -> dict[str, str]:
    """Every header of an attempt: the subscription's own first, the hub's over them."""
    return {
        **subscription.headers,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Lastseen-Event-Id": delivery.event_id,
        "Lastseen-Delivery-Id": str(delivery.id),
        "Lastseen-Attempt": str(delivery.attempts),
        "Lastseen-Timestamp": str(timestamp),
        "Lastseen-Signature": sign(subscription.secret, timestamp, delivery.body),
    }


def _pinned(url: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> tuple[str, str]:
    parts = urlsplit(url)
    host = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{host}:{parts.port}" if parts.port else host
    host_header = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")), host_header


async def attempt(
    client: httpx.AsyncClient,
    subscription: Subscription,
    delivery: Delivery,
    policy: AddressPolicy,
    timeout: float,
    now: float,
) -> Attempt:
    """Make one attempt; never raises for the receiver's or the network's faults."""
    started = time.monotonic()
    headers: Mapping[str, str] = signed_headers(subscription, delivery, int(now))
    try:
        host, _, address = await resolve(subscription.url, policy)
        url, host_header = _pinned(subscription.url, address)
        request = client.build_request(
            "POST",
            url,
            content=delivery.body,
            headers={**headers, "Host": host_header},
            timeout=timeout,
            extensions={"sni_hostname": host},
        )
        response = await client.send(request, stream=True)
        try:
            kept = bytearray()
            async for chunk in response.aiter_raw():
                kept.extend(chunk[: RESPONSE_CAP - len(kept)])
                if len(kept) >= RESPONSE_CAP:
                    break
        finally:
            await response.aclose()
        return Attempt(
            now,
            time.monotonic() - started,
            status=response.status_code,
            response=cap_response(kept.decode("utf-8", "replace")),
        )
    except DestinationRefused as exc:
        return Attempt(now, time.monotonic() - started, error=f"{exc.code}: {exc.message}")
    except httpx.TimeoutException:
        return Attempt(now, time.monotonic() - started, error=f"timeout after {timeout:g}s")
    except httpx.HTTPError as exc:
        detail = str(exc) or type(exc).__name__
        return Attempt(now, time.monotonic() - started, error=cap_response(detail))
