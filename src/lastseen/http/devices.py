"""Device routes: heartbeats (single and batched), registry, history."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lastseen.errors import InvalidInput
from lastseen.http import validation as v
from lastseen.http.heartbeat import BatchEndpoint, HeartbeatEndpoint
from lastseen.http.responses import JSONResponse
from lastseen.hub.api import HubAPI
from lastseen.hub.core import check_device_id
from lastseen.store import DeviceQuery
from lastseen.wire import device_json, event_record_json

_PUT_FIELDS = frozenset({"profile", "labels"})


def _hub(request: Request) -> HubAPI:
    hub: HubAPI = request.app.state.hub
    return hub


async def put_device(request: Request) -> Response:
    hub = _hub(request)
    device_id = check_device_id(request.path_params["device_id"])
    body = await v.read_json(request, hub.settings.max_body, allow_empty=True)
    body = v.require_object(body if body is not None else {}, "device body")
    v.refuse_unknown(body, _PUT_FIELDS, "device body")
    profile = body.get("profile")
    if profile is not None and not isinstance(profile, str):
        raise InvalidInput("profile must be a string", code="unknown_profile")
    labels = v.labels(body["labels"]) if body.get("labels") is not None else None
    record, created = await hub.put_device(device_id, profile=profile, labels=labels)
    return JSONResponse(
        device_json(record, hub.profiles.get(record.profile)), status_code=201 if created else 200
    )


async def get_device(request: Request) -> Response:
    hub = _hub(request)
    record, profile = await hub.read_device(check_device_id(request.path_params["device_id"]))
    return JSONResponse(device_json(record, profile))


async def delete_device(request: Request) -> Response:
    hub = _hub(request)
    await hub.delete_device(check_device_id(request.path_params["device_id"]))
    return Response(status_code=204)


async def list_devices(request: Request) -> Response:
    hub = _hub(request)
    params = request.query_params
    status = params.get("status")
    label = params.get("label")
    after = params.get("after") or None
    if after is not None:
        check_device_id(after)
    query = DeviceQuery(
        status=v.status(status) if status else None,
        profile=params.get("profile") or None,
        label=v.label_pair(label) if label else None,
        after=after,
        limit=v.int_param(request, "limit", 100, minimum=1, maximum=1000) or 100,
    )
    page, cursor, seq = await hub.list_devices(query)
    return JSONResponse(
        {
            "devices": [device_json(record, profile) for record, profile in page],
            "seq": seq,
            "next": cursor,
        }
    )


async def device_transitions(request: Request) -> Response:
    hub = _hub(request)
    device_id = check_device_id(request.path_params["device_id"])
    await hub.read_device(device_id)  # 404 for an unknown device
    after = v.int_param(request, "after", 0) or 0
    limit = v.int_param(request, "limit", 100, minimum=1, maximum=1000) or 100
    events = await hub.store.events(after, limit, device_id=device_id)
    return JSONResponse({"events": [event_record_json(e) for e in events]})


async def events(request: Request) -> Response:
    hub = _hub(request)
    after = v.int_param(request, "after", 0) or 0
    limit = v.int_param(request, "limit", 100, minimum=1, maximum=1000) or 100
    found = await hub.store.events(after, limit)
    return JSONResponse(
        {
            "events": [event_record_json(e) for e in found],
            "first_seq": await hub.store.first_seq(),
            "last_seq": await hub.store.last_seq(),
        }
    )


routes = [
    Route("/v1/devices/{device_id}/heartbeat", HeartbeatEndpoint(), methods=["POST"]),
    Route("/v1/heartbeats", BatchEndpoint(), methods=["POST"]),
    Route("/v1/devices", list_devices, methods=["GET"]),
    Route("/v1/devices/{device_id}", get_device, methods=["GET"]),
    Route("/v1/devices/{device_id}", put_device, methods=["PUT"]),
    Route("/v1/devices/{device_id}", delete_device, methods=["DELETE"]),
    Route("/v1/devices/{device_id}/transitions", device_transitions, methods=["GET"]),
    Route("/v1/events", events, methods=["GET"]),
]
