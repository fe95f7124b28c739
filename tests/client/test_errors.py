"""HTTP failures become ``HubError``/``HubUnavailable`` at the client's edge.

These are the only tests that use ``httpx.MockTransport``: they check translation,
not the hub (end-to-end tests run the client against a real hub).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable

import httpx
import pytest

from lastseen.client import HubClient, HubError, HubUnavailable
from lastseen.client.errors import from_response, from_transport_error
from lastseen.errors import LastseenError, Unavailable

Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler) -> HubClient:
    return HubClient("http://hub.test", "secret", transport=httpx.MockTransport(handler))


def answer(status: int, body: bytes = b"", content_type: str = "application/json") -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"Content-Type": content_type})

    return handle


def fail(exc: Exception) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        raise exc

    return handle


@pytest.mark.anyio
async def test_the_hubs_error_body_gives_code_and_message() -> None:
    body = b'{"code": "not_found", "message": "no device sensor-9"}'
    async with client(answer(404, body)) as hub:
        with pytest.raises(HubError) as caught:
            await hub.get_device("sensor-9")
    error = caught.value
    assert (error.status, error.code, error.message) == (404, "not_found", "no device sensor-9")
    assert isinstance(error, LastseenError)
    assert not isinstance(error, HubUnavailable)
    assert not error.retryable


@pytest.mark.anyio
async def test_a_foreign_error_page_still_gives_a_message() -> None:
    async with client(answer(418, b"<h1>teapot</h1>", "text/html")) as hub:
        with pytest.raises(HubError) as caught:
            await hub.delete_device("x")
    assert caught.value.code == "http_418"
    assert "teapot" in caught.value.message


@pytest.mark.anyio
@pytest.mark.parametrize("status", [502, 503, 504])
async def test_gateway_and_overload_answers_are_unavailable(status: int) -> None:
    body = b'{"code": "unavailable", "message": "store down"}'
    async with client(answer(status, body)) as hub:
        with pytest.raises(HubUnavailable) as caught:
            await hub.heartbeat("x")
    assert caught.value.status == status
    assert caught.value.retryable
    assert isinstance(caught.value, Unavailable)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (httpx.ConnectError("Connection refused"), "unreachable"),
        (httpx.ReadError("reset by peer"), "unreachable"),
        (httpx.RemoteProtocolError("peer closed"), "unreachable"),
        (httpx.ConnectTimeout("timed out"), "timeout"),
        (httpx.ReadTimeout("timed out"), "timeout"),
    ],
)
async def test_connection_failures_are_unavailable(exc: Exception, code: str) -> None:
    async with client(fail(exc)) as hub:
        with pytest.raises(HubUnavailable) as caught:
            await hub.get_device("x")
    error = caught.value
    assert (error.status, error.code) == (None, code)
    assert "http://hub.test" in error.message
    assert error.__cause__ is exc
    assert error.retryable


@pytest.mark.anyio
async def test_an_answer_that_is_not_json_is_a_bad_response() -> None:
    async with client(answer(200, b"<html>")) as hub:
        with pytest.raises(HubError) as caught:
            await hub.get_device("x")
    assert (caught.value.status, caught.value.code) == (200, "bad_response")


@pytest.mark.anyio
async def test_an_answer_of_the_wrong_shape_is_a_bad_response() -> None:
    async with client(answer(200, b'{"id": 5}')) as hub:
        with pytest.raises(HubError) as caught:
            await hub.get_device("x")
    assert caught.value.code == "bad_response"


@pytest.mark.anyio
async def test_stream_error_answers_are_translated_too() -> None:
    body = b'{"code": "unauthorized", "message": "bad key"}'
    async with client(answer(401, body)) as hub:
        with pytest.raises(HubError) as caught:
            async for _ in hub.stream(after=0):
                pass
    assert (caught.value.status, caught.value.code) == (401, "unauthorized")


@pytest.mark.anyio
async def test_a_stream_that_is_not_an_event_stream_is_refused() -> None:
    async with client(answer(200, b"{}")) as hub:
        with pytest.raises(HubError) as caught:
            async for _ in hub.stream():
                pass
    assert caught.value.code == "bad_response"


def test_a_url_without_scheme_is_invalid() -> None:
    error = from_transport_error(httpx.UnsupportedProtocol("missing protocol"), "hub:8080")
    assert type(error) is HubError
    assert error.code == "invalid_url"


def test_unknown_httpx_errors_still_become_hub_errors() -> None:
    error = from_transport_error(httpx.TooManyRedirects("loop"), "http://h")
    assert (type(error), error.code) == (HubError, "http_error")


def test_an_error_body_is_quoted_at_most_briefly() -> None:
    error = from_response(500, b"x" * 10_000, "Internal Server Error")
    assert len(error.message) < 300
    assert error.message.startswith("Internal Server Error: xxx")


def test_an_empty_error_body_uses_the_reason_phrase() -> None:
    assert from_response(500, b"", "Internal Server Error").message == "Internal Server Error"


def test_errors_survive_pickling() -> None:
    error = HubUnavailable(503, "unavailable", "later")
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.status, copy.code, copy.message) == (
        HubUnavailable,
        503,
        "unavailable",
        "later",
    )
    assert repr(copy) == "HubUnavailable(503, 'unavailable', 'later')"
