"""Inbound MQTT heartbeats through the local Mosquitto into one hub process.

A real ``lastseen serve --mqtt`` process subscribes (shared subscription, MQTT v5);
this process publishes N empty heartbeats over one MQTT 3.1.1 connection to
``{prefix}dev-NNNNNN/heartbeat`` for D devices, at QoS 0 and at QoS 1 (QoS 1 with a
bounded window of unacknowledged messages). Every device is made online first, so
the measured pass is the hot path (no transition, no SQL write), like the HTTP
throughput benchmark. The rate is measured on the hub's side: its
``lastseen_mqtt_messages_total`` counter, polled from ``/metrics``, from the first
poll that saw the pass's messages to the one that saw the last.

    .venv/bin/python -m bench.mqtt_ingest                         # 200 000 messages, 3 runs
    .venv/bin/python -m bench.mqtt_ingest --messages 20000 --runs 1
"""

from __future__ import annotations

import argparse
import re
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.common import median, print_table, write_result
from lastseen.mqtt.wire import RawDevice
from lastseen.testing import HubProcess

HOST, PORT = "127.0.0.1", 1883
#: QoS 1 messages the publisher may be ahead of the hub.
WINDOW = 400
_COUNTER = re.compile(r'^lastseen_mqtt_messages_total\{kind="heartbeat"\} (\S+)$', re.M)
_DROPPED = re.compile(r"^lastseen_mqtt_queue_overflows_total (\S+)$", re.M)


def processed(client: httpx.Client) -> tuple[int, int]:
    text = client.get("/metrics").text
    found, dropped = _COUNTER.search(text), _DROPPED.search(text)
    return (
        int(float(found.group(1))) if found else 0,
        int(float(dropped.group(1))) if dropped else 0,
    )


def _wait_for(client: httpx.Client, target: int, idle: float = 3.0) -> list[tuple[float, int]]:
    """Poll until the counter reaches ``target`` or stops moving for ``idle`` s."""
    samples = [(time.perf_counter(), processed(client)[0])]
    while samples[-1][1] < target:
        time.sleep(0.05)
        now, count = time.perf_counter(), processed(client)[0]
        if count == samples[-1][1] and now - samples[-1][0] > idle:
            break
        if count != samples[-1][1]:
            samples.append((now, count))
    return samples


def _pass(hub: HubProcess, prefix: str, devices: int, messages: int, qos: int) -> dict[str, Any]:
    topics = [f"{prefix}dev-{i:06d}/heartbeat" for i in range(devices)]
    batch = [(topics[i % devices], b"") for i in range(messages)]
    with hub.client() as client:
        before, dropped_before = processed(client)
        device = RawDevice(HOST, PORT, f"bench-{uuid.uuid4().hex[:8]}")
        sent_at: list[float] = []

        def publish() -> None:
            started = time.perf_counter()
            if qos == 0:
                device.publish_many(batch, qos=0)
            else:
                # Bounded: never more than WINDOW messages ahead of the hub, or the
                # broker's per-subscriber queue (max_queued_messages, 1000) drops them.
                with hub.client() as poll:
                    for start in range(0, len(batch), 200):
                        device.publish_many(batch[start : start + 200], qos=1, window=200)
                        while start + 200 - (processed(poll)[0] - before) > WINDOW:
                            time.sleep(0.02)
            sent_at.append(time.perf_counter() - started)

        thread = threading.Thread(target=publish)
        thread.start()
        samples = _wait_for(client, before + messages)
        thread.join()
        device.disconnect()
        after, dropped_after = processed(client)
    # The rate between the first and the last poll that saw progress.
    first = next(((t, c) for t, c in samples if c > before), samples[0])
    last = samples[-1]
    span = last[0] - first[0]
    counted = last[1] - first[1]
    return {
        "qos": qos,
        "messages": messages,
        "devices": devices,
        "processed": after - before,
        "queue_overflows": dropped_after - dropped_before,
        "publish_seconds": round(sent_at[0], 3) if sent_at else None,
        "hub_rate": round(counted / span) if span > 0 else None,
    }


def run(messages: int, devices: int, runs: int, qos_levels: list[int]) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lastseen-bench-") as tmp:
        prefix = f"bench-{uuid.uuid4().hex[:8]}/"
        hub = HubProcess(
            Path(tmp) / "data",
            "--mqtt", f"mqtt://{HOST}:{PORT}", "--mqtt-prefix", prefix,
            "--mqtt-group", f"bench-{uuid.uuid4().hex[:6]}", "--log-level", "warning",
            "--mqtt-queue", str(max(100_000, messages)),
        )  # fmt: skip
        hub.start()
        try:
            with hub.client() as client:
                deadline = time.monotonic() + 10
                while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
                    time.sleep(0.05)
            # Warm-up: every device registered and online, so passes are the hot path.
            _pass(hub, prefix, devices, devices, 1)
            for _ in range(runs):
                for qos in qos_levels:
                    result = _pass(hub, prefix, devices, messages, qos)
                    print(result, flush=True)
                    results.append(result)
        finally:
            hub.stop()
    summary: dict[str, Any] = {}
    for qos in qos_levels:
        mine = [r for r in results if r["qos"] == qos]
        summary[f"qos{qos}"] = {
            "hub_rate": median([r["hub_rate"] for r in mine if r["hub_rate"]]),
            "processed_all": all(r["processed"] == r["messages"] for r in mine),
        }
    # One entry per run, holding that run's pass at each QoS.
    per_run = [
        {f"qos{r['qos']}": r for r in results[i : i + len(qos_levels)]}
        for i in range(0, len(results), len(qos_levels))
    ]
    return {"summary": summary, "runs": per_run}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--qos", type=int, nargs="+", default=[0, 1], choices=[0, 1])
    args = parser.parse_args()
    outcome = run(args.messages, args.devices, args.runs, args.qos)
    summary = outcome["summary"]
    print_table(
        f"MQTT heartbeats into one hub ({args.messages} messages, {args.devices} devices, "
        f"median of {args.runs})",
        [
            (f"QoS {q}", f"{summary[f'qos{q}']['hub_rate']:.0f} heartbeats/s  "
             f"all processed: {summary[f'qos{q}']['processed_all']}")
            for q in args.qos
        ],
    )  # fmt: skip
    print(f"\nwrote {write_result('mqtt_ingest', summary, outcome['runs'])}")


if __name__ == "__main__":
    main()
