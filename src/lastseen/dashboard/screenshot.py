"""``python -m lastseen.dashboard.screenshot OUT.png``: the README's dashboard picture.

Starts a real hub (``lastseen.testing.HubProcess``) with short thresholds, gives it a
fleet of 200 devices in mixed states through the public API (labels and profiles by
``PUT``, signs of life by batched heartbeats, some left to go stale or offline, a few
made to flap), opens the page in headless Chromium and saves a 1280x800 screenshot.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

from lastseen.testing import HubProcess

SITES = ("berlin", "lisbon", "oslo", "austin")
ROLES = ("gateway", "signage", "sensor")
CONFIG = """
[profiles.sensor]
stale_after = 4
offline_after = 8
flap_threshold = 3
flap_window = 600
"""


def populate(hub: HubProcess, count: int = 200) -> list[str]:
    """A fleet in mixed states (about 20 s of real time); the ids still beating."""
    ids = [f"{ROLES[i % 3]}-{SITES[i % 4]}-{i:03d}" for i in range(count)]
    with hub.client() as client:
        for i, device_id in enumerate(ids):
            profile = "sensor" if ROLES[i % 3] == "sensor" else "default"
            labels = {"site": SITES[i % 4], "role": ROLES[i % 3]}
            client.put(f"/v1/devices/{device_id}", json={"profile": profile, "labels": labels})
        seen = [d for i, d in enumerate(ids) if i % 17 != 5]  # a few never seen: unknown
        beat = {"heartbeats": [{"device_id": d, "metrics": {"cpu": 0.3}} for d in seen]}
        client.post("/v1/heartbeats", json=beat)
        # Sensors that stop beating go stale, then offline; a few flap.
        quiet = {d for i, d in enumerate(seen) if i % 5 == 1 or i % 11 == 3}
        flappers = [d for i, d in enumerate(seen) if i % 29 == 7]
        for _ in range(4):
            time.sleep(2.2)
            alive = [d for d in seen if d not in quiet and d not in flappers]
            client.post("/v1/heartbeats", json={"heartbeats": [{"device_id": d} for d in alive]})
            time.sleep(2.4)
            beat = {"heartbeats": [{"device_id": d} for d in (*alive, *flappers)]}
            client.post("/v1/heartbeats", json=beat)
    return alive


def keep_beating(hub: HubProcess, alive: list[str], stop: threading.Event) -> None:
    with hub.client() as client:
        while not stop.is_set():
            client.post("/v1/heartbeats", json={"heartbeats": [{"device_id": d} for d in alive]})
            stop.wait(1.5)


def shoot(url: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(url + "/")
            page.wait_for_selector("#conn[data-state=live]")
            page.wait_for_timeout(1500)
            page.screenshot(path=str(out))
        finally:
            browser.close()


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "docs/dashboard.png")
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "hub.toml"
        config.write_text(CONFIG)
        hub = HubProcess(
            Path(tmp) / "data", "--stale-after", "6", "--offline-after", "60",
            "--config", str(config),
        )  # fmt: skip
        hub.start()
        try:
            stop = threading.Event()
            beater = threading.Thread(target=keep_beating, args=(hub, populate(hub), stop))
            beater.start()
            try:
                shoot(hub.url, out)
            finally:
                stop.set()
                beater.join()
        finally:
            hub.stop()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
