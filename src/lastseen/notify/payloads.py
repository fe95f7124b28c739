"""Webhook bodies and their signature. Pure.

Two formats: ``json`` (lastseen's own, documented in docs/notifications.md) and
``slack`` (a Slack incoming-webhook message: ``text`` plus ``blocks``, which Slack,
Mattermost, Rocket.Chat and Discord's ``/slack`` endpoint all accept).

The signature is ``v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>``: the
timestamp inside the signed text lets a receiver refuse replays of old bodies.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import orjson

from lastseen.notify.models import Alert, Format
from lastseen.timefmt import rfc3339, rfc3339_or_none

_ICONS = {"online": ":large_green_circle:", "stale": ":large_yellow_circle:",
          "offline": ":red_circle:", "unknown": ":white_circle:"}  # fmt: skip


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Lastseen-Signature`` header value for ``body`` sent at ``timestamp``."""
    message = str(timestamp).encode() + b"." + body
    return "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def alert_json(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "key": alert.key,
        "rule": alert.rule,
        "kind": alert.kind.value,
        "device_id": alert.device_id,
        "state": alert.state.value,
        "opened_at": rfc3339(alert.opened_at),
        "resolved_at": rfc3339_or_none(alert.resolved_at),
        "reason": alert.reason,
    }


def transition_body(
    fmt: Format, event: Mapping[str, Any], labels: Mapping[str, str], profile: str
) -> bytes:
    """The body for one transition (``event`` is its ``/v1/events`` JSON)."""
    if fmt is Format.SLACK:
        to = str(event["to"])
        text = (
            f"{_ICONS.get(to, '')} {event['device_id']} is {to} (was {event['from']}; "
            f"{event['reason']}, {event['at']})"
        ).strip()
        return _slack(text)
    body = {
        "type": "transition",
        "id": str(event["seq"]),
        **event,
        "device": {"id": event["device_id"], "labels": dict(labels), "profile": profile},
    }
    return orjson.dumps(body)


def alert_body(fmt: Format, action: str, alert: Alert, event_id: str) -> bytes:
    """The body for an alert opened, resolved or fired."""
    if fmt is Format.SLACK:
        icon = ":rotating_light:" if action == "opened" else ":white_check_mark:"
        text = f"{icon} alert {alert.rule} {action} for {alert.device_id}: {alert.reason}"
        return _slack(text)
    return orjson.dumps(
        {"type": "alert", "id": event_id, "action": action, "alert": alert_json(alert)}
    )


def _slack(text: str) -> bytes:
    return orjson.dumps(
        {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}
    )
