"""``/v1/webhooks``, ``/v1/alert-rules`` and ``/v1/alerts``: admin only, changes audited.

A webhook's secret is in the answer that creates it and nowhere else; custom
header values that look like credentials are masked when read back.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lastseen.errors import Conflict, InvalidInput, NotFound
from lastseen.http import validation as v
from lastseen.http.auditing import PRINCIPAL, client_address
from lastseen.http.responses import JSONResponse
from lastseen.notify import validate
from lastseen.notify.codec import filter_json, rule_json
from lastseen.notify.models import AlertState, Delivery, DeliveryStatus, Subscription, WebhookFilter
from lastseen.notify.payloads import alert_json
from lastseen.notify.service import Notifier, new_id, new_secret
from lastseen.notify.ssrf import resolve
from lastseen.security import Principal, Security
from lastseen.timefmt import rfc3339, rfc3339_or_none

MASK = "********"


def webhook_json(s: Subscription) -> dict[str, Any]:
    """A subscription as the API shows it: never the secret."""
    return {
        "id": s.id,
        "url": s.url,
        "filter": filter_json(s.filter),
        "headers": {
            k: MASK if validate.SENSITIVE_HEADER.search(k) else val for k, val in s.headers.items()
        },
        "format": s.format.value,
        "description": s.description,
        "enabled": s.enabled,
        "created_at": rfc3339(s.created_at),
        "updated_at": rfc3339(s.updated_at),
    }


def delivery_json(d: Delivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "webhook_id": d.subscription_id,
        "event_id": d.event_id,
        "device_id": d.device_id,
        "status": d.status.value,
        "attempts": d.attempts,
        "created_at": rfc3339(d.created_at),
        "next_at": rfc3339(d.next_at) if d.status is DeliveryStatus.PENDING else None,
        "delivered_at": rfc3339_or_none(d.delivered_at),
        "last_status": d.last_status,
        "last_error": d.last_error,
        "last_response": d.last_response,
    }


def _notifier(request: Request) -> Notifier:
    notifier: Notifier = request.app.state.notifier
    return notifier


async def _audit(request: Request, action: str, target: str, details: dict[str, Any]) -> None:
    security: Security = request.app.state.security
    principal: Principal = request.scope[PRINCIPAL]
    await security.auditor.record(
        principal.key_id, action, target, client_address(request.scope), details
    )


async def _body(request: Request) -> dict[str, Any]:
    limit = request.app.state.hub.settings.max_body
    return v.require_object(await v.read_json(request, limit), "body")


async def _subscription(request: Request) -> Subscription:
    found = _notifier(request).subscriptions.get(request.path_params["webhook_id"])
    if found is None:
        found = await _notifier(request).store.get_subscription(request.path_params["webhook_id"])
    if found is None:
        raise NotFound(
            f"no webhook {request.path_params['webhook_id']!r}", code="webhook_not_found"
        )
    return found


async def _fields(request: Request, body: dict[str, Any], base: Subscription) -> Subscription:
    validate.refuse_unknown(body, validate.WEBHOOK_FIELDS, "webhook")
    url = validate.url(body["url"]) if "url" in body else base.url
    flt = validate.webhook_filter(body["filter"]) if "filter" in body else base.filter
    headers = validate.headers(body["headers"]) if "headers" in body else dict(base.headers)
    fmt = validate.webhook_format(body["format"]) if "format" in body else base.format
    text = validate.description(body["description"]) if "description" in body else base.description
    enabled = body.get("enabled", base.enabled)
    if not isinstance(enabled, bool):
        raise InvalidInput("enabled must be true or false", code="invalid_webhook")
    if url != base.url:
        await resolve(url, _notifier(request).addresses)
    return Subscription(
        base.id,
        url,
        base.secret,
        flt,
        headers,
        fmt,
        text,
        enabled,
        base.created_at,
        base.updated_at,
    )


async def list_webhooks(request: Request) -> Response:
    subs = await _notifier(request).store.list_subscriptions()
    return JSONResponse({"webhooks": [webhook_json(s) for s in subs]})


async def create_webhook(request: Request) -> Response:
    notifier = _notifier(request)
    body = await _body(request)
    if "url" not in body:
        raise InvalidInput("url is required", code="invalid_webhook")
    now = notifier.clock.now()
    blank = Subscription(
        new_id(), "", new_secret(), WebhookFilter(), created_at=now, updated_at=now
    )
    sub = await notifier.create(await _fields(request, body, blank))
    await _audit(request, "webhook.created", sub.id, {"url": sub.url, "format": sub.format.value})
    return JSONResponse({**webhook_json(sub), "secret": sub.secret}, status_code=201)


async def get_webhook(request: Request) -> Response:
    return JSONResponse(webhook_json(await _subscription(request)))


async def update_webhook(request: Request) -> Response:
    """PATCH changes the fields given; PUT replaces them all (``url`` required)."""
    notifier = _notifier(request)
    current = await _subscription(request)
    body = await _body(request)
    base = current
    if request.method == "PUT":
        if "url" not in body:
            raise InvalidInput("url is required", code="invalid_webhook")
        base = Subscription(current.id, current.url, current.secret, created_at=current.created_at)
    sub = await notifier.update(await _fields(request, body, base))
    await _audit(request, "webhook.updated", sub.id, {"fields": sorted(body)})
    return JSONResponse(webhook_json(sub))


async def delete_webhook(request: Request) -> Response:
    sub = await _subscription(request)
    await _notifier(request).delete(sub.id)
    await _audit(request, "webhook.deleted", sub.id, {"url": sub.url})
    return JSONResponse({"id": sub.id, "deleted": True})


async def list_deliveries(request: Request) -> Response:
    sub = await _subscription(request)
    raw = request.query_params.get("status") or None
    try:
        status = DeliveryStatus(raw) if raw is not None else None
    except ValueError:
        known = ", ".join(s.value for s in DeliveryStatus)
        raise InvalidInput(f"status must be one of {known}", code="invalid_parameter") from None
    limit = v.int_param(request, "limit", 100, minimum=1, maximum=1000)
    assert limit is not None
    rows = await _notifier(request).store.deliveries(sub.id, status, limit)
    return JSONResponse({"deliveries": [delivery_json(d) for d in rows]})


async def replay_one(request: Request) -> Response:
    sub = await _subscription(request)
    raw = request.path_params["delivery_id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > v.MAX_DIGITS:
        raise NotFound(f"no delivery {raw!r}", code="delivery_not_found")
    delivery = await _notifier(request).store.get_delivery(int(raw))
    if delivery is None or delivery.subscription_id != sub.id:
        raise NotFound(f"no delivery {raw!r} of this webhook", code="delivery_not_found")
    if delivery.status not in (DeliveryStatus.DEAD, DeliveryStatus.DELIVERED):
        raise Conflict("only dead or delivered deliveries can be replayed", code="not_replayable")
    count = await _notifier(request).replay(sub.id, delivery.id)
    await _audit(request, "webhook.replayed", sub.id, {"delivery_id": delivery.id})
    return JSONResponse({"replayed": count})


async def replay_dead(request: Request) -> Response:
    sub = await _subscription(request)
    count = await _notifier(request).replay(sub.id, None)
    await _audit(request, "webhook.replayed", sub.id, {"dead": count})
    return JSONResponse({"replayed": count})


# ---------------------------------------------------------------------- alert rules


async def list_rules(request: Request) -> Response:
    rules = _notifier(request).rules.values()
    return JSONResponse({"rules": [rule_json(r) for r in sorted(rules, key=lambda r: r.name)]})


async def get_rule(request: Request) -> Response:
    rule = _notifier(request).rules.get(request.path_params["name"])
    if rule is None:
        raise NotFound(f"no alert rule {request.path_params['name']!r}", code="rule_not_found")
    return JSONResponse(rule_json(rule))


async def put_rule(request: Request) -> Response:
    notifier = _notifier(request)
    name = request.path_params["name"]
    rule = validate.rule(name, await _body(request))
    if name in notifier.config_rules:
        raise Conflict(f"rule {name!r} is defined in the config file", code="rule_from_config")
    created = name not in notifier.api_rules
    await notifier.put_rule(rule)
    await _audit(
        request, "alert_rule.created" if created else "alert_rule.updated", name, rule_json(rule)
    )
    return JSONResponse(rule_json(rule), status_code=201 if created else 200)


async def delete_rule(request: Request) -> Response:
    notifier = _notifier(request)
    name = request.path_params["name"]
    if name in notifier.config_rules:
        raise Conflict(f"rule {name!r} is defined in the config file", code="rule_from_config")
    if not await notifier.delete_rule(name):
        raise NotFound(f"no alert rule {name!r}", code="rule_not_found")
    await _audit(request, "alert_rule.deleted", name, {})
    return JSONResponse({"name": name, "deleted": True})


async def list_alerts(request: Request) -> Response:
    raw = request.query_params.get("state") or None
    try:
        state = AlertState(raw) if raw is not None else None
    except ValueError:
        raise InvalidInput("state must be open or resolved", code="invalid_parameter") from None
    limit = v.int_param(request, "limit", 100, minimum=1, maximum=1000)
    assert limit is not None
    alerts = await _notifier(request).store.alerts(state, limit)
    return JSONResponse({"alerts": [alert_json(a) for a in alerts]})


routes = [
    Route("/v1/webhooks", list_webhooks, methods=["GET"]),
    Route("/v1/webhooks", create_webhook, methods=["POST"]),
    Route("/v1/webhooks/{webhook_id}", get_webhook, methods=["GET"]),
    Route("/v1/webhooks/{webhook_id}", update_webhook, methods=["PATCH", "PUT"]),
    Route("/v1/webhooks/{webhook_id}", delete_webhook, methods=["DELETE"]),
    Route("/v1/webhooks/{webhook_id}/deliveries", list_deliveries, methods=["GET"]),
    Route("/v1/webhooks/{webhook_id}/replay", replay_dead, methods=["POST"]),
    Route(
        "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/replay", replay_one, methods=["POST"]
    ),
    Route("/v1/alert-rules", list_rules, methods=["GET"]),
    Route("/v1/alert-rules/{name}", get_rule, methods=["GET"]),
    Route("/v1/alert-rules/{name}", put_rule, methods=["PUT"]),
    Route("/v1/alert-rules/{name}", delete_rule, methods=["DELETE"]),
    Route("/v1/alerts", list_alerts, methods=["GET"]),
]
