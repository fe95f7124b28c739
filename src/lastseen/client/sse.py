"""An incremental Server-Sent Events parser: bytes in, events out, no I/O.

Theory of operation
-------------------
This follows the "event stream interpretation" of the HTML standard
(https://html.spec.whatwg.org/multipage/server-sent-events.html), so that the hub's
stream reads the same here as in a browser's ``EventSource``:

* Lines end with CRLF, LF or CR, and a chunk boundary may fall anywhere, even
  between the CR and the LF of one CRLF or inside a multi-byte UTF-8 character.
  Only those three count: ``str.splitlines`` also splits on U+2028, form feeds and
  others, which is why we do not use it (nor ``httpx``'s line iterator, built on it).
* ``data:`` lines accumulate (joined by LF); a blank line dispatches the event;
  ``event:`` names it (default ``message``); a line starting with ``:`` is a
  comment (the hub's keep-alive); a line without a colon is a field with an empty
  value; one space after the colon is dropped.
* ``id:`` sets the *last event id*, which persists: every later event carries it
  until another ``id:`` changes it, and it is what a client sends back as
  ``Last-Event-ID`` when it reconnects. An id containing NUL is ignored; an empty id
  clears it. It takes effect when its block is dispatched, even a block without
  data, so a block cut off by a disconnect does not move it.
* ``retry:`` with only ASCII digits sets the reconnection delay in milliseconds.
* A single byte order mark at the very start of the stream is ignored; bytes that
  are not valid UTF-8 become U+FFFD instead of failing the stream.

The parser is bounded: an incomplete line or an event's data beyond ``max_size``
characters raises ``SSEError`` rather than growing without limit.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from lastseen.errors import LastseenError

#: Default bound on one line and on one event's data, in characters.
DEFAULT_MAX_SIZE = 1 << 20

_LINE_END = re.compile(r"\r\n|\r|\n")
_BOM = "\ufeff"


class SSEError(LastseenError):
    """The event stream broke a limit of the parser."""

    code = "sse_invalid"


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event, its data still text. ``id`` is the last event id in
    force when it was dispatched (None if no id was ever set, or it was cleared)."""

    event: str
    data: str
    id: str | None = None


class SSEParser:
    """Feed it the stream piece by piece; it returns the events completed so far.

    ``last_event_id`` seeds the persistent id, as when resuming after a reconnect.
    Use one parser per connection; do not mix ``feed`` (bytes) with ``feed_text`` on
    one parser. ``feed_line`` takes one line without its terminator.
    """

    __slots__ = (
        "_data",
        "_data_size",
        "_decoder",
        "_event",
        "_id_buffer",
        "_max_size",
        "_partial",
        "_partial_size",
        "_skip_lf",
        "_started",
        "last_event_id",
        "retry",
    )

    def __init__(self, *, last_event_id: str | None = None, max_size: int = DEFAULT_MAX_SIZE):
        if max_size < 1:
            raise ValueError(f"max_size must be positive, got {max_size}")
        #: The id a reconnect should send as ``Last-Event-ID`` ("" for none).
        self.last_event_id = last_event_id or ""
        #: The reconnection delay the server asked for, in milliseconds.
        self.retry: int | None = None
        self._id_buffer = self.last_event_id
        self._max_size = max_size
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._started = False
        self._partial: list[str] = []
        self._partial_size = 0
        self._skip_lf = False
        self._data: list[str] = []
        self._data_size = 0
        self._event = ""

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Decode ``chunk`` (any slice of the byte stream) and parse it."""
        return self.feed_text(self._decoder.decode(chunk))

    def feed_text(self, text: str) -> list[ServerSentEvent]:
        """Parse ``text``, any slice of the decoded stream."""
        if not text:
            return []
        if not self._started:
            self._started = True
            if text.startswith(_BOM):
                text = text[1:]
        if self._skip_lf:
            # The previous slice ended with CR: an LF right here belongs to that CRLF.
            self._skip_lf = False
            if text.startswith("\n"):
                text = text[1:]
        events: list[ServerSentEvent] = []
        start = 0
        # Only the new text is scanned: the held-back partial line has no line end.
        for match in _LINE_END.finditer(text):
            line = text[start : match.start()]
            if self._partial:
                line = "".join((*self._partial, line))
                self._partial.clear()
                self._partial_size = 0
            event = self._line(line)
            if event is not None:
                events.append(event)
            start = match.end()
        if start < len(text):
            self._partial.append(text[start:])
            self._partial_size += len(text) - start
            if self._partial_size > self._max_size:
                raise SSEError(f"event stream line longer than {self._max_size} characters")
        elif text.endswith("\r"):
            self._skip_lf = True
        return events

    def feed_line(self, line: str) -> ServerSentEvent | None:
        """Parse one complete line (without its line terminator)."""
        return self._line(line)

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data_size += len(value) + 1
            if self._data_size > self._max_size:
                raise SSEError(f"event data longer than {self._max_size} characters")
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id_buffer = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        self.last_event_id = self._id_buffer
        if not self._data:
            self._event = ""
            return None
        event = ServerSentEvent(
            event=self._event or "message",
            data="\n".join(self._data),
            id=self.last_event_id or None,
        )
        self._data = []
        self._data_size = 0
        self._event = ""
        return event
