"""Subscriptions' filters and alert rules to and from plain JSON (stores and API share it)."""

from __future__ import annotations

from typing import Any

from lastseen.notify.models import AlertKind, AlertRule, Target, WebhookFilter
from lastseen.presence import Status


def target_json(target: Target) -> dict[str, Any]:
    return {
        "devices": sorted(target.devices),
        "labels": dict(target.labels),
        "profiles": sorted(target.profiles),
    }


def target_from(data: dict[str, Any]) -> Target:
    return Target(
        devices=frozenset(data.get("devices", ())),
        labels=tuple(sorted(dict(data.get("labels", {})).items())),
        profiles=frozenset(data.get("profiles", ())),
    )


def filter_json(flt: WebhookFilter) -> dict[str, Any]:
    return {
        **target_json(flt.target),
        "transitions": flt.transitions,
        "from": sorted(s.value for s in flt.from_statuses),
        "to": sorted(s.value for s in flt.to_statuses),
        "alerts": flt.alerts,
        "rules": sorted(flt.rules),
    }


def filter_from(data: dict[str, Any]) -> WebhookFilter:
    return WebhookFilter(
        target=target_from(data),
        transitions=bool(data.get("transitions", True)),
        from_statuses=frozenset(Status(s) for s in data.get("from", ())),
        to_statuses=frozenset(Status(s) for s in data.get("to", ())),
        alerts=bool(data.get("alerts", True)),
        rules=frozenset(data.get("rules", ())),
    )


def rule_json(rule: AlertRule) -> dict[str, Any]:
    body: dict[str, Any] = {"name": rule.name, "kind": rule.kind.value, **target_json(rule.target)}
    if rule.kind in (AlertKind.OFFLINE_FOR, AlertKind.STALE_FOR):
        body["duration"] = rule.duration
    elif rule.kind is AlertKind.FLAPPING:
        body.update(count=rule.count, window=rule.window, quiet=rule.quiet)
    body["source"] = rule.source
    return body


def rule_from(data: dict[str, Any]) -> AlertRule:
    return AlertRule(
        name=data["name"],
        kind=AlertKind(data["kind"]),
        target=target_from(data),
        duration=float(data.get("duration", 0.0)),
        count=int(data.get("count", 0)),
        window=float(data.get("window", 0.0)),
        quiet=float(data.get("quiet", 0.0)),
        source=str(data.get("source", "api")),
    )
