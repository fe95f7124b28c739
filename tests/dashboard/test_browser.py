"""The dashboard in Debian's headless Chromium against a real ``lastseen serve``.

Playwright drives ``/usr/bin/chromium`` (no browser download). Without Chromium the
module skips, except under ``CI=true`` where that is a failure. The hub runs with
stale after 0.5 s and offline after 1 s, so timeouts happen in real time; bounds are
generous.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lastseen.testing import HubProcess

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
CHROMIUM = shutil.which("chromium")
if CHROMIUM is None:
    if os.environ.get("CI") == "true":
        raise RuntimeError("chromium is required under CI=true (apt-get install chromium)")
    pytest.skip("chromium is not installed", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

pytestmark = pytest.mark.e2e
ADMIN = "dashboard-admin-key-0123456789"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield opened
    finally:
        context.close()
    assert errors == [], errors


def row(page: Page, device_id: str) -> Any:
    return page.locator(f'.viewport .row:not([hidden])[data-id="{device_id}"]')


def test_a_heartbeat_turns_its_row_online_then_it_goes_stale_and_offline(
    hub: HubProcess, page: Page
) -> None:
    page.goto(hub.url + "/")
    expect(page.locator("#conn")).to_have_text("live")
    with hub.client() as client:
        assert client.post("/v1/devices/pi-1/heartbeat").status_code == 200
    expect(row(page, "pi-1").locator(".badge")).to_have_text("● online", timeout=1000)
    # stale lasts half a second: watch every frame rather than poll the locator.
    badge = '.viewport .row:not([hidden])[data-id="pi-1"] .badge'
    for status in ("stale", "offline"):
        page.wait_for_function(
            f"() => document.querySelector('{badge}')?.textContent.includes('{status}')",
            polling="raf",
            timeout=5000,
        )
    expect(page.locator("#n-offline")).to_have_text("1")


def test_sse_fallback_applies_the_stream_too(hub: HubProcess, page: Page) -> None:
    with hub.client() as client:
        client.put("/v1/devices/early", json={"labels": {"site": "a"}})
    page.goto(hub.url + "/?transport=sse")
    expect(page.locator("#conn")).to_have_text("live")
    expect(row(page, "early").locator(".badge")).to_have_text("? unknown")
    with hub.client() as client:
        client.post("/v1/devices/early/heartbeat")
    expect(row(page, "early").locator(".badge")).to_have_text("● online", timeout=1000)


def test_a_hub_restart_shows_reconnecting_then_resyncs_with_what_was_missed(
    hub: HubProcess, page: Page
) -> None:
    with hub.client() as client:
        client.post("/v1/devices/gw-1/heartbeat")
    page.goto(hub.url + "/")
    expect(row(page, "gw-1").locator(".badge")).to_have_text("○ offline", timeout=5000)
    hub.stop()
    expect(page.locator("#conn")).to_have_text("reconnecting…", timeout=5000)
    hub.start()
    with hub.client() as client:  # while the page is still away
        client.post("/v1/devices/gw-1/heartbeat")
        client.post("/v1/devices/gw-2/heartbeat")
    expect(page.locator("#conn")).to_have_text("resynced", timeout=15000)
    expect(row(page, "gw-2")).to_be_visible()
    # gw-1 came back online, then timed out again: the page followed every step.
    expect(row(page, "gw-1").locator(".badge")).to_have_text("○ offline", timeout=5000)
    page.goto(hub.url + "/#/devices/gw-1")
    timeline = page.locator(".events li")
    expect(timeline).to_have_count(6, timeout=5000)
    expect(timeline.first).to_contain_text("timeout:offline_after")


def test_filters_sort_keyboard_and_the_device_page(hub: HubProcess, page: Page) -> None:
    with hub.client() as client:
        for name, site in (("a-1", "berlin"), ("b-2", "oslo"), ("c-3", "berlin")):
            client.put(f"/v1/devices/{name}", json={"labels": {"site": site}})
        client.post("/v1/devices/b-2/heartbeat", json={"attributes": {"fw": "1.4.2"}})
    page.goto(hub.url + "/")
    expect(page.locator(".viewport .row:not([hidden])")).to_have_count(3)
    page.fill("#f-label", "site:berlin")
    expect(page.locator(".viewport .row:not([hidden])")).to_have_count(2)
    page.fill("#f-label", "")
    page.fill("#f-text", "b-")
    expect(page.locator(".viewport .row:not([hidden])")).to_have_count(1)
    page.fill("#f-text", "")
    page.click(".count[data-status=unknown]")
    expect(page.locator(".viewport .row:not([hidden])")).to_have_count(2)
    page.click(".count[data-status='']")
    page.click("button[data-sort=id]")  # descending
    expect(page.locator(".viewport .row:not([hidden])").first).to_have_attribute("data-id", "c-3")
    page.locator(".viewport .row:not([hidden])").first.focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(page).to_have_url(hub.url + "/#/devices/b-2")
    expect(page.locator(".title h1")).to_have_text("b-2")
    expect(page.locator(".kv")).to_contain_text("1.4.2")
    expect(page.locator(".uptime .legend").first).to_contain_text("transition")
    expect(page.locator(".events li").last).to_contain_text("heartbeat")


def test_admin_adds_and_removes_and_a_read_key_sees_no_edit_controls(
    tmp_path: Path, page: Page
) -> None:
    hub = HubProcess(tmp_path / "data", env={"LASTSEEN_ADMIN_KEY": ADMIN})
    hub.start()
    try:
        with hub.client() as client:
            answer = client.post("/v1/keys", json={"role": "read", "name": "wall screen"})
            read_key = answer.json()["secret"]
        page.goto(hub.url + "/")
        page.fill("#key", "wrong")
        page.click("#signin-form button")
        expect(page.locator("#signin-error")).to_contain_text("not valid")
        page.fill("#key", ADMIN)
        page.click("#signin-form button")
        expect(page.locator("#who")).to_have_text("admin key")
        page.click("#add-toggle")
        page.fill("#add-id", "new-1")
        page.fill("#add-labels", "site=lab")
        page.click("#add-form button[type=submit]")
        expect(row(page, "new-1").locator(".chip")).to_have_text("site=lab")
        row(page, "new-1").click()
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#remove")
        expect(page.locator(".viewport .row:not([hidden])")).to_have_count(0)
        page.click("#signout")
        expect(page.locator("#signin")).to_be_visible()
        page.fill("#key", read_key)
        page.click("#signin-form button")
        expect(page.locator("#who")).to_have_text("read-only key")
        expect(page.locator("#add-toggle")).to_be_hidden()
        with hub.client() as client:
            client.put("/v1/devices/seen-by-read")
        row(page, "seen-by-read").click()
        expect(page.locator(".title h1")).to_have_text("seen-by-read")
        expect(page.locator("#remove")).to_have_count(0)
    finally:
        hub.stop()


def test_the_screenshot_is_made_by_this_harness(tmp_path: Path) -> None:
    """``LASTSEEN_UPDATE_SCREENSHOT=1`` rewrites docs/dashboard.png; otherwise the
    committed one is checked (so CI never dirties the tree)."""
    target = Path(__file__).parents[2] / "docs" / "dashboard.png"
    if os.environ.get("LASTSEEN_UPDATE_SCREENSHOT") == "1":
        from lastseen.dashboard.screenshot import main

        assert main([str(target)]) == 0
    data = target.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 800)
