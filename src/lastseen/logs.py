"""Structured logs: one event per line, ``key=value`` (text) or JSON objects.

A record may carry many events at once in ``extra={BATCH: [message, ...]}``; it is
rendered as one line per message. The hub logs each committed batch of transitions
this way, paying the logging machinery's per-call cost once per batch.
"""

from __future__ import annotations

import logging
import sys
import time

import orjson

BATCH = "lastseen_batch"


def _stamp(record: logging.LogRecord) -> str:
    second = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{second}.{int(record.msecs):03d}Z"


def _messages(record: logging.LogRecord) -> list[str]:
    batch: list[str] | None = getattr(record, BATCH, None)
    return batch if batch is not None else [record.getMessage()]


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = f"ts={_stamp(record)} level={record.levelname.lower()} logger={record.name} "
        text = "\n".join(prefix + message for message in _messages(record))
        if record.exc_info:
            text += " exc=" + repr(self.formatException(record.exc_info))
        return text


class _JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        lines = []
        for message in _messages(record):
            body: dict[str, object] = {
                "ts": _stamp(record),
                "level": record.levelname.lower(),
                "logger": record.name,
            }
            # Messages are written as key=value pairs; lift them into fields.
            for part in message.split(" "):
                key, sep, value = part.partition("=")
                if sep:
                    body[key] = value
            if record.exc_info:
                body["exc"] = self.formatException(record.exc_info)
            lines.append(orjson.dumps(body).decode())
        return "\n".join(lines)


def configure(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JSONFormatter() if fmt == "json" else _TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).disabled = True
