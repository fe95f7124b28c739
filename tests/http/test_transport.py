"""Transport: security headers on pages, CORS closed unless opened, trusted proxies only."""

from __future__ import annotations

from pathlib import Path

import pytest

from lastseen.http.headers import CSP
from tests.http.conftest import AppFactory, Running

pytestmark = pytest.mark.anyio


async def test_html_pages_carry_security_headers(running: Running) -> None:
    async with running.client() as client:
        docs = await client.get("/docs")
        spec = await client.get("/openapi.json")
    assert docs.headers["content-security-policy"] == CSP
    assert docs.headers["x-frame-options"] == "DENY"
    assert docs.headers["x-content-type-options"] == "nosniff"
    assert docs.headers["referrer-policy"] == "no-referrer"
    assert "strict-transport-security" not in docs.headers  # plain HTTP
    assert spec.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in spec.headers


async def test_hsts_only_when_serving_tls(make_app: AppFactory, tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("not read by the app")
    running = await make_app(tls_cert=cert, tls_key=cert)
    async with running.client() as client:
        docs = await client.get("/docs")
    assert docs.headers["strict-transport-security"].startswith("max-age=")


async def test_the_api_is_left_alone(running: Running) -> None:
    async with running.admin_client() as admin:
        beat = await admin.post("/v1/devices/d/heartbeat")
    assert "content-security-policy" not in beat.headers
    assert "x-content-type-options" not in beat.headers


async def test_cors_is_closed_by_default(running: Running) -> None:
    origin = {"Origin": "https://evil.example"}
    async with running.admin_client() as admin:
        answer = await admin.get("/v1/devices", headers=origin)
        preflight = await admin.options(
            "/v1/devices",
            headers={**origin, "Access-Control-Request-Method": "DELETE"},
        )
    assert "access-control-allow-origin" not in answer.headers
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.status_code >= 400


async def test_cors_allows_only_configured_origins(make_app: AppFactory) -> None:
    running = await make_app(cors_origin=("https://dash.example.com",))
    async with running.admin_client() as admin:
        allowed = await admin.get("/v1/devices", headers={"Origin": "https://dash.example.com"})
        other = await admin.get("/v1/devices", headers={"Origin": "https://evil.example"})
        preflight = await admin.options(
            "/v1/devices/x",
            headers={
                "Origin": "https://dash.example.com",
                "Access-Control-Request-Method": "DELETE",
                "Access-Control-Request-Headers": "authorization",
            },
        )
    assert allowed.headers["access-control-allow-origin"] == "https://dash.example.com"
    assert "access-control-allow-origin" not in other.headers
    assert preflight.status_code == 200
    assert "DELETE" in preflight.headers["access-control-allow-methods"]


async def _source(running: Running, address: str, forwarded: str | None) -> str:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    async with running.client(running.admin, address=address) as admin:
        await admin.put("/v1/devices/d", headers=headers)
        records = (await admin.get("/v1/audit", params={"order": "desc", "limit": 1})).json()
    source: str = records["records"][0]["source"]
    return source


async def test_forwarded_for_is_ignored_without_a_trusted_proxy(running: Running) -> None:
    assert await _source(running, "127.0.0.1", "198.51.100.9") == "127.0.0.1"


async def test_forwarded_for_is_believed_from_trusted_proxies_only(make_app: AppFactory) -> None:
    running = await make_app(trusted_proxy=("10.0.0.0/8",))
    assert await _source(running, "10.1.2.3", "198.51.100.9") == "198.51.100.9"
    # A chain: the nearest untrusted hop is the client; a spoofed first entry is ignored.
    assert await _source(running, "10.1.2.3", "6.6.6.6, 198.51.100.9, 10.9.9.9") == ("198.51.100.9")
    assert await _source(running, "203.0.113.50", "198.51.100.9") == "203.0.113.50"
