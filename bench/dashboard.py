"""Dashboard with a large fleet: first screen, DOM size and frame gaps in Chromium.

One hub process (``--open``, short thresholds) learns ``--devices`` devices through
batched heartbeats (``POST /v1/heartbeats``, 1000 per request) and a background
thread keeps them online. Debian's headless Chromium (Playwright, no browser
download) then opens ``/`` and the benchmark measures:

* ``first_screen_ms``: ``page.goto`` → the device count shows every device;
* ``rows_in_dom``: ``.viewport .row`` elements (virtualised rendering keeps this at
  a screenful plus overscan, whatever the fleet size);
* ``scroll``: frame gaps (``requestAnimationFrame`` deltas collected in the page)
  while the table is scrolled top to bottom in ``SCROLL_STEPS`` frames;
* ``stale``: frame gaps while every device turns stale at once (the heartbeats stop,
  the timeouts fire together), and ``stale_shown_ms``: the moment the last batch's
  stale timeout is due (last batch sent + ``--stale-after``) → the page counts every
  device as stale.

Browser and hub share the machine's cores, so every number includes both.

    .venv/bin/python -m bench.dashboard                           # 10 000 devices, 3 runs
    .venv/bin/python -m bench.dashboard --devices 2000 --runs 1   # quick
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import median, percentile, print_table, write_result
from lastseen.testing import HubProcess

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")

from playwright.sync_api import Browser, Page, sync_playwright

BATCH = 1000
SCROLL_STEPS = 200
#: Frame gaps are collected in the page until ``window.__stopGaps()`` returns them.
COLLECT_GAPS = """() => {
  const gaps = [];
  let last = performance.now();
  let running = true;
  const step = (now) => {
    gaps.push(now - last);
    last = now;
    if (running) requestAnimationFrame(step);
  };
  requestAnimationFrame((now) => { last = now; requestAnimationFrame(step); });
  window.__stopGaps = () => { running = false; return gaps; };
}"""
#: Scroll the table top to bottom, one step per frame; the frame gaps seen meanwhile.
SCROLL = """async (steps) => {
  const viewport = document.getElementById("viewport");
  viewport.scrollTop = 0;
  await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
  const end = viewport.scrollHeight - viewport.clientHeight;
  const gaps = [];
  let last = performance.now();
  for (let i = 1; i <= steps; i++) {
    viewport.scrollTop = Math.round((end * i) / steps);
    const now = await new Promise((done) => requestAnimationFrame(done));
    gaps.push(now - last);
    last = now;
  }
  const rows = document.querySelectorAll(".viewport .row:not([hidden])");
  const lastId = rows.length ? rows[rows.length - 1].dataset.id : null;
  return { gaps, atBottom: viewport.scrollTop >= end - 1, lastId };
}"""


def _batches(devices: int) -> list[list[dict[str, str]]]:
    ids = [f"dash-{i:06d}" for i in range(devices)]
    return [[{"device_id": d} for d in ids[i : i + BATCH]] for i in range(0, devices, BATCH)]


def _beat_all(client: httpx.Client, batches: list[list[dict[str, str]]]) -> float:
    """Heartbeat every device; the monotonic time the last batch was sent."""
    sent = 0.0
    for batch in batches:
        sent = time.monotonic()
        answer = client.post("/v1/heartbeats", json={"heartbeats": batch})
        answer.raise_for_status()
        if answer.json()["rejected"]:
            raise RuntimeError(f"heartbeats rejected: {answer.text[:300]}")
    return sent


class KeepOnline:
    """Re-sends every batch each ``period`` seconds until stopped."""

    def __init__(self, client: httpx.Client, batches: list[list[dict[str, str]]], period: float):
        self.client, self.batches, self.period = client, batches, period
        self.stopped = threading.Event()
        self.last_sent = time.monotonic()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="keep-online", daemon=True)

    def _run(self) -> None:
        try:
            while not self.stopped.wait(self.period):
                self.last_sent = _beat_all(self.client, self.batches)
        except BaseException as exc:
            self.error = exc

    def stop(self) -> float:
        """Stop heartbeating; when the last batch was sent."""
        self.stopped.set()
        self.thread.join()
        if self.error is not None:
            raise RuntimeError(f"keeping devices online failed: {self.error}")
        return self.last_sent


def _gaps(values: list[float]) -> dict[str, float]:
    return {
        "frames": len(values),
        "p50_ms": round(percentile(values, 0.5), 1),
        "p95_ms": round(percentile(values, 0.95), 1),
        "max_ms": round(max(values), 1) if values else float("nan"),
    }


def _counts_show(page: Page, element: str, devices: int, timeout_ms: float) -> None:
    page.wait_for_function(
        f"(n) => document.getElementById('{element}')?.textContent === n.toLocaleString()",
        arg=devices,
        polling="raf",
        timeout=timeout_ms,
    )


def run_once(
    browser: Browser, devices: int, stale_after: float, offline_after: float, workdir: Path
) -> dict[str, Any]:
    hub = HubProcess(
        workdir / f"hub-{time.monotonic_ns()}",
        "--stale-after", str(stale_after), "--offline-after", str(offline_after),
        "--log-level", "warning",
    )  # fmt: skip
    hub.start()
    batches = _batches(devices)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    try:
        with httpx.Client(base_url=hub.url, timeout=30) as client:
            started = time.monotonic()
            _beat_all(client, batches)
            register_s = time.monotonic() - started
            keeper = KeepOnline(client, batches, period=stale_after / 3)
            keeper.thread.start()
            try:
                page = context.new_page()
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                started = time.monotonic()
                page.goto(hub.url + "/")
                _counts_show(page, "n-all", devices, 60_000)
                first_screen_ms = (time.monotonic() - started) * 1000
                _counts_show(page, "n-online", devices, 30_000)
                rows = page.evaluate("() => document.querySelectorAll('.viewport .row').length")
                scrolled = page.evaluate(SCROLL, SCROLL_STEPS)
                page.evaluate("() => { document.getElementById('viewport').scrollTop = 0; }")
                page.evaluate(COLLECT_GAPS)
            finally:
                last_sent = keeper.stop()
        due = last_sent + stale_after
        _counts_show(page, "n-stale", devices, (stale_after + 60) * 1000)
        stale_shown_ms = (time.monotonic() - due) * 1000
        page.wait_for_timeout(500)  # the frames right after the change count too
        stale_gaps: list[float] = page.evaluate("() => window.__stopGaps()")
    finally:
        context.close()
        hub.stop()
    if errors:
        raise RuntimeError(f"page errors: {errors}")
    if not scrolled["atBottom"] or scrolled["lastId"] != f"dash-{devices - 1:06d}":
        raise RuntimeError(f"scrolling did not reach the last device: {scrolled}")
    return {
        "devices": devices,
        "register_s": round(register_s, 2),
        "first_screen_ms": round(first_screen_ms),
        "rows_in_dom": rows,
        "scroll": _gaps(scrolled["gaps"]),
        "stale": _gaps(stale_gaps),
        "stale_shown_ms": round(stale_shown_ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stale-after", type=float, default=3.0, help="hub threshold, seconds")
    parser.add_argument("--offline-after", type=float, default=30.0, help="hub threshold, seconds")
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        parser.error("chromium is not on PATH (Debian package chromium)")
    runs = []
    with tempfile.TemporaryDirectory(prefix="lastseen-bench-") as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True)
        try:
            for _ in range(args.runs):
                result = run_once(
                    browser, args.devices, args.stale_after, args.offline_after, Path(tmp)
                )
                print(result, flush=True)
                runs.append(result)
        finally:
            browser.close()
    summary: dict[str, Any] = {
        key: median([r[key] for r in runs])
        for key in ("first_screen_ms", "rows_in_dom", "stale_shown_ms")
    }
    for phase in ("scroll", "stale"):
        summary[phase] = {
            key: median([r[phase][key] for r in runs]) for key in ("p50_ms", "p95_ms", "max_ms")
        }
    rows = [
        ("first screen (goto → count shows every device)", f"{summary['first_screen_ms']} ms"),
        ("row elements in the DOM", str(summary["rows_in_dom"])),
    ]
    for phase, what in (("scroll", "scrolling top to bottom"), ("stale", "all turn stale")):
        s = summary[phase]
        rows.append(
            (
                f"frame gaps, {what}",
                f"p50 {s['p50_ms']} ms  p95 {s['p95_ms']} ms  max {s['max_ms']} ms",
            )
        )
    rows.append(("stale timeout due → counts show all stale", f"{summary['stale_shown_ms']} ms"))
    print_table(
        f"dashboard: {args.devices} devices in headless Chromium (median of {len(runs)})", rows
    )
    print(f"\nwrote {write_result('dashboard', summary, runs)}")


if __name__ == "__main__":
    main()
