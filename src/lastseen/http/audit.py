"""``GET /v1/audit``: the audit log, paged (admin only)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lastseen.errors import InvalidInput
from lastseen.http import validation as v
from lastseen.http.responses import JSONResponse
from lastseen.hub.api import HubAPI
from lastseen.security import ENV_KEY_ID, OPEN_PRINCIPAL, Security
from lastseen.store import AuditRecord
from lastseen.timefmt import rfc3339


def _actor_names(security: Security) -> dict[str, str]:
    names = {record.id: record.name for record in security.keyring.records.values()}
    names[ENV_KEY_ID] = "LASTSEEN_ADMIN_KEY"
    names[OPEN_PRINCIPAL.key_id] = OPEN_PRINCIPAL.name
    return names


def record_json(record: AuditRecord, names: dict[str, str]) -> dict[str, Any]:
    return {
        "id": record.id,
        "at": rfc3339(record.at),
        "actor": record.actor,
        "actor_name": names.get(record.actor),
        "action": record.action,
        "target": record.target,
        "source": record.source,
        "details": record.details,
    }


async def audit(request: Request) -> Response:
    """Records with ``after`` < id < ``before``, oldest first (``order=asc``, the
    default) or newest first (``order=desc``). ``next`` holds the query parameters of
    the following page, or null on the last one."""
    hub: HubAPI = request.app.state.hub
    security: Security = request.app.state.security
    limit = v.int_param(request, "limit", 100, minimum=1, maximum=1000) or 100
    after = v.int_param(request, "after", 0) or 0
    before = v.int_param(request, "before", None)
    order = request.query_params.get("order") or "asc"
    if order not in ("asc", "desc"):
        raise InvalidInput("order must be asc or desc", code="invalid_parameter")
    newest_first = order == "desc"
    records = await hub.store.audit(
        after=after, before=before, limit=limit, newest_first=newest_first
    )
    page: dict[str, int | str] | None = None
    if len(records) == limit:
        last = records[-1].id
        page = {"after": after, "before": last} if newest_first else {"after": last}
        if not newest_first and before is not None:
            page["before"] = before
        page["order"] = order
    names = _actor_names(security)
    return JSONResponse({"records": [record_json(r, names) for r in records], "next": page})


routes = [Route("/v1/audit", audit, methods=["GET"])]
