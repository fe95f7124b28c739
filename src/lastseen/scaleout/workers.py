"""``--workers N``: N forked worker processes on one port, kept at N.

Every worker is a full shared-hub instance (state is in Redis, so any worker can die
and another serve its clients). The parent only supervises: it forwards SIGTERM and
SIGINT to the workers and, until it is told to stop, replaces a worker that exits by
itself (a crash, the kernel's OOM killer, a SIGKILL) with a new one. A worker that
exits with status 2 (a configuration error, which a new worker would repeat) stops the
whole group instead. Replacements are paced: after ``BURST`` restarts within
``WINDOW`` seconds each waits ``PAUSE`` seconds first, so a worker that crashes at once
on start cannot turn the parent into a fork loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("lastseen.workers")

#: Exit status of a worker that must not be replaced (a configuration error).
CONFIG_ERROR = 2
BURST = 5
WINDOW = 60.0
PAUSE = 2.0


def _fork(work: Callable[[], int]) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            code = work()
        finally:
            os._exit(code)
    return pid


def supervise(work: Callable[[], int], count: int) -> int:
    """Run ``work`` (returns an exit status) in ``count`` forked workers until a signal
    to stop; the exit status is the worst of the workers' final ones."""
    children = {_fork(work) for _ in range(count)}
    stopping = threading.Event()  # a flag the signal handler sets

    def forward(sig: int, frame: FrameType | None) -> None:
        stopping.set()
        for child in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, sig)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    restarts: deque[float] = deque(maxlen=BURST)
    worst = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        children.discard(pid)
        code = os.waitstatus_to_exitcode(status)
        if stopping.is_set():
            worst = max(worst, code & 0xFF)
            continue
        if code == CONFIG_ERROR:
            log.error("event=worker_failed pid=%d status=%d reason=config_error", pid, code)
            forward(signal.SIGTERM, None)
            worst = CONFIG_ERROR
            continue
        now = time.monotonic()
        if len(restarts) == BURST and now - restarts[0] < WINDOW:
            time.sleep(PAUSE)
            if stopping.is_set():
                continue
        restarts.append(time.monotonic())
        replacement = _fork(work)
        children.add(replacement)
        if stopping.is_set():  # the signal came while forking: the forward may have missed it
            with contextlib.suppress(ProcessLookupError):
                os.kill(replacement, signal.SIGTERM)
        log.warning(
            "event=worker_replaced pid=%d status=%d new_pid=%d reason=exited",
            pid,
            code,
            replacement,
        )
    return worst
