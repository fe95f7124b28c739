"""Schemathesis against the hub's own OpenAPI document, in-process over ASGI.

Every operation in /openapi.json gets generated requests, schema-valid (positive)
and schema-invalid (negative), sent with an admin key. Schemathesis's checks then
require: no 5xx ever, every status code documented, every response matching its
documented schema and content type, invalid input refused with a 4xx, valid input
not refused as invalid. ``/v1/stream`` never ends, so it is not fuzzed here.

Bounded: ``LASTSEEN_FUZZ_EXAMPLES`` cases per operation and mode (default 20), a
fresh hub per test (the schemathesis pytest plugin ends ASGI lifespans after every
test), derandomized so CI runs are repeatable.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.python import asgi
from starlette.applications import Starlette

from lastseen.http.app import create_app
from lastseen.http.openapi import spec
from lastseen.hub.core import Hub
from lastseen.presence import Profile, ProfileRegistry
from lastseen.settings import Settings
from lastseen.store import SQLiteStore

ADMIN = "fuzz-admin-key"
EXAMPLES = int(os.environ.get("LASTSEEN_FUZZ_EXAMPLES", "20"))
UNFUZZED = {"/v1/stream"}  # an endless response


def _cases() -> list[tuple[str, str, GenerationMode]]:
    """Every operation with valid input, and those that take input with invalid input."""
    cases = []
    for path, item in spec()["paths"].items():
        if path in UNFUZZED:
            continue
        for method, operation in item.items():
            if method == "parameters":
                continue
            cases.append((method.upper(), path, GenerationMode.POSITIVE))
            takes_input = item.get("parameters") or operation.get("parameters")
            if takes_input or operation.get("requestBody"):
                cases.append((method.upper(), path, GenerationMode.NEGATIVE))
    return cases


#: Cases run, by operation (printed at the end of the module for the CI log).
RAN: dict[str, int] = {}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Any]:
    profiles = ProfileRegistry([Profile(), Profile(name="sensor", stale_after=5.0)])
    hub = Hub(
        Settings(admin_key=ADMIN, profiles=profiles, data_dir=tmp_path),
        SQLiteStore(tmp_path / "fuzz.db"),
    )
    app: Starlette = create_app(hub)
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        # Unknown query parameters are ignored by design (docs/api.md), unlike unknown
        # body fields, which are refused: so "extra parameter" is not invalid input.
        schema.config.generation.update(allow_extra_parameters=False)
        # 413 (body over --max-body) is a refusal of invalid input like 400 is.
        rejection = schema.config.checks.negative_data_rejection
        rejection.expected_statuses = [*rejection.expected_statuses, "413"]
        yield schema
    finally:
        asgi.shutdown_lifespans()


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    total = sum(RAN.values())
    print(f"\nschemathesis: {total} cases over {len(RAN)} operation/mode pairs")


@pytest.mark.parametrize(("method", "path", "mode"), _cases())
def test_every_operation_answers_as_documented(
    api: Any, method: str, path: str, mode: GenerationMode
) -> None:
    operation = api[path][method]
    label = f"{method} {path} {mode.value}"

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: Any) -> None:
        RAN[label] = RAN.get(label, 0) + 1
        case.call_and_validate(headers={"Authorization": f"Bearer {ADMIN}"})

    run()
