"""Retry decisions and the claim's pick, without a clock or a network."""

from __future__ import annotations

import ipaddress

import pytest

from lastseen.errors import ConfigError
from lastseen.notify.models import Attempt, Delivery, DeliveryStatus
from lastseen.notify.policy import RESPONSE_CAP, RetryPolicy, backoff, cap_response, decide
from lastseen.notify.ssrf import AddressPolicy
from lastseen.notify.store import pick

POLICY = RetryPolicy(max_attempts=4, max_age=100.0, base=1.0, cap=8.0)


def test_full_jitter_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff(POLICY, n, lambda: 1.0) for n in range(1, 7)] == [1, 2, 4, 8, 8, 8]
    assert backoff(POLICY, 3, lambda: 0.25) == 1.0
    assert backoff(POLICY, 10_000, lambda: 0.5) == 4.0  # no overflow


def test_decisions_deliver_retry_and_run_out_of_attempts_or_age() -> None:
    ok = Attempt(0.0, 0.1, status=204)
    bad = Attempt(10.0, 0.5, status=500)
    assert decide(POLICY, ok, 1, 0.0, lambda: 1.0).status is DeliveryStatus.DELIVERED
    retry = decide(POLICY, bad, 2, 0.0, lambda: 1.0)
    assert (retry.status, retry.next_at) == (DeliveryStatus.PENDING, 12.5)
    assert decide(POLICY, bad, 4, 0.0, lambda: 1.0).status is DeliveryStatus.DEAD
    old = Attempt(99.0, 0.5, error="timeout")
    assert decide(POLICY, old, 1, 0.0, lambda: 1.0).status is DeliveryStatus.DEAD
    assert (
        decide(POLICY, Attempt(0, 0, status=302), 1, 0.0, lambda: 0.0).status
        is DeliveryStatus.PENDING
    )


def test_bad_policies_are_refused() -> None:
    with pytest.raises(ConfigError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ConfigError):
        RetryPolicy(base=2.0, cap=1.0)


def test_responses_are_capped_on_a_character_boundary() -> None:
    assert cap_response("ok") == "ok"
    capped = cap_response("é" * 2000)
    assert len(capped.encode()) <= RESPONSE_CAP
    assert set(capped) == {"é"}


def _d(i: int, sub: str, device: str) -> Delivery:
    return Delivery(i, sub, str(i), device, b"", DeliveryStatus.PENDING, 0, 0.0, 0.0)


def test_pick_keeps_one_per_device_and_caps_each_subscription() -> None:
    rows = [_d(1, "slow", "a"), _d(2, "slow", "b"), _d(3, "slow", "c"), _d(4, "fast", "a"),
            _d(5, "fast", "a"), _d(6, "fast", "b")]  # fmt: skip
    chosen = pick(rows, 10, {"slow": 1}, 2)
    assert [d.id for d in chosen] == [1, 4, 6]
    assert [d.id for d in pick(rows, 2, {}, 5)] == [1, 2]


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "192.168.0.1", "172.16.0.1", "169.254.169.254", "::1",
     "fe80::1", "fc00::1", "224.0.0.1", "0.0.0.0", "100.64.0.1", "::ffff:127.0.0.1", "240.0.0.1"],
)  # fmt: skip
def test_non_public_addresses_are_refused_by_default(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert not AddressPolicy().permits(ip)
    assert AddressPolicy(allow_private=True).permits(ip)


def test_public_addresses_and_allowed_networks_pass() -> None:
    assert AddressPolicy().permits(ipaddress.ip_address("93.184.216.34"))
    allow = AddressPolicy.of(False, ["10.0.0.0/8"])
    assert allow.permits(ipaddress.ip_address("10.9.9.9"))
    assert not allow.permits(ipaddress.ip_address("192.168.1.1"))
