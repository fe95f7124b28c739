"""Which subscriptions an event goes to. Pure."""

from __future__ import annotations

from collections.abc import Mapping

from lastseen.notify.models import WebhookFilter
from lastseen.presence import Status


def wants_transition(
    flt: WebhookFilter,
    device_id: str,
    labels: Mapping[str, str],
    profile: str,
    from_status: Status,
    to_status: Status,
) -> bool:
    if not flt.transitions:
        return False
    if flt.from_statuses and from_status not in flt.from_statuses:
        return False
    if flt.to_statuses and to_status not in flt.to_statuses:
        return False
    return flt.target.matches(device_id, labels, profile)


def wants_alert(
    flt: WebhookFilter, device_id: str, labels: Mapping[str, str], profile: str, rule: str
) -> bool:
    if not flt.alerts or (flt.rules and rule not in flt.rules):
        return False
    return flt.target.matches(device_id, labels, profile)
