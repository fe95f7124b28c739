"""Structured log lines: one event per line, batches included."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from lastseen import logs


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield io.StringIO()
    root.handlers[:], level = saved
    root.setLevel(level)


def _log(fmt: str, stream: io.StringIO) -> logging.Logger:
    logs.configure("info", fmt)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    return logging.getLogger("lastseen.test")


def test_text_lines_are_key_value_and_a_batch_is_one_line_per_event(
    captured: io.StringIO,
) -> None:
    log = _log("text", captured)
    log.info("event=started port=%d", 8080)
    log.info("", extra={logs.BATCH: ["event=transition device=a", "event=transition device=b"]})
    lines = captured.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].endswith("level=info logger=lastseen.test event=started port=8080")
    assert lines[1].endswith("logger=lastseen.test event=transition device=a")
    assert lines[2].endswith("logger=lastseen.test event=transition device=b")
    assert all(line.startswith("ts=") and line.split()[0].endswith("Z") for line in lines)


def test_json_lines_lift_key_value_pairs_into_fields(captured: io.StringIO) -> None:
    log = _log("json", captured)
    log.warning("event=commit_failed retry_in=0.05")
    log.info("", extra={logs.BATCH: ["event=transition device=a", "event=transition device=b"]})
    objects = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert objects[0]["level"] == "warning"
    assert objects[0]["event"] == "commit_failed"
    assert objects[0]["retry_in"] == "0.05"
    assert [o["device"] for o in objects[1:]] == ["a", "b"]
