"""Microseconds per inbound MQTT message, stage by stage, in one process.

The stages of ``lastseen serve --mqtt`` for an empty heartbeat of an online device,
each timed alone over the same messages (median of 5):

* socket read — 256 KiB ``recv`` calls on a loopback socket pair, fed by a thread;
* decode — ``codec.Decoder.feed`` on those reads (MQTT 5 and, for the A/B, 3.1.1);
* topic parse — ``parser.split_topic``; parser — ``parser.decode`` (topic + payload),
  and ``parser.CachedDecoder`` (what the bridge uses: topics memoised);
* batching — ``plan.waves`` over the decoded batch;
* hub.heartbeat_statuses — the hub's batch call, 2 000 messages a batch, SQLite store;
* bridge.apply — parser + batching + hub + counting, as the bridge runs them.

    .venv/bin/python -m bench.mqtt_profile --messages 100000   # or bench.mqtt_ingest --profile
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import median, print_table, write_result
from lastseen.hub.core import Hub
from lastseen.metrics import Registry
from lastseen.mqtt import codec, parser, plan
from lastseen.mqtt.bridge import BATCH, MqttBridge
from lastseen.settings import Settings
from lastseen.store import SQLiteStore

PREFIX = "lastseen/"
REPEAT = 5


def stream(messages: int, devices: int, version: int) -> tuple[bytes, list[str]]:
    topics = [f"{PREFIX}dev-{i:06d}/heartbeat" for i in range(devices)]
    data = b"".join(
        codec.publish(topics[i % devices], b"", qos=1, packet_id=i % 65535 + 1, version=version)
        for i in range(messages)
    )
    return data, topics


def _timed(work: Callable[[], object], messages: int) -> float:
    """Median µs per message of ``work`` over REPEAT runs."""
    costs = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        work()
        costs.append((time.perf_counter() - started) / messages * 1e6)
    return median(costs)


def socket_read(data: bytes) -> list[bytes]:
    left, right = socket.socketpair()
    right.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    writer = threading.Thread(target=left.sendall, args=(data,))
    reads: list[bytes] = []
    got = 0
    writer.start()
    while got < len(data):
        chunk = right.recv(256 * 1024)
        reads.append(chunk)
        got += len(chunk)
    writer.join()
    left.close()
    right.close()
    return reads


def decode_all(reads: list[bytes], version: int) -> list[codec.Publish]:
    decoder = codec.Decoder(version=version)
    out: list[codec.Publish] = []
    for chunk in reads:
        decoder.feed(chunk, out)
    return out


async def hub_stages(publishes: list[codec.Publish], devices: int) -> dict[str, float]:
    n = len(publishes)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(mqtt="mqtt://127.0.0.1:1", mqtt_prefix=PREFIX)
        hub = Hub(settings, SQLiteStore(Path(tmp) / "hub.db"))
        await hub.start()
        try:
            bridge = MqttBridge(hub, settings, Registry())
            await bridge.apply(publishes[:devices])  # every device registered and online
            decoded = bridge._decode(publishes)
            batches = [decoded[i : i + BATCH] for i in range(0, n, BATCH)]
            items = [[(m.device_id, m.attributes, m.metrics) for m in b] for b in batches]

            async def beats() -> None:
                for batch in items:
                    await hub.heartbeat_statuses(batch)

            async def applied() -> None:
                for start in range(0, n, BATCH):
                    await bridge.apply(publishes[start : start + BATCH])

            costs: dict[str, float] = {}
            for name, work in (("hub.heartbeat_statuses", beats), ("bridge.apply", applied)):
                runs = []
                for _ in range(REPEAT):
                    started = time.perf_counter()
                    await work()
                    runs.append((time.perf_counter() - started) / n * 1e6)
                costs[name] = median(runs)
            return costs
        finally:
            await hub.stop()


def run(messages: int, devices: int) -> None:
    data5, _ = stream(messages, devices, codec.V5)
    data4, _ = stream(messages, devices, codec.V311)
    reads5 = socket_read(data5)
    reads4 = socket_read(data4)
    publishes = decode_all(reads5, codec.V5)
    cap = 65_536
    costs = {
        "socket read (256 KiB recv)": _timed(lambda: socket_read(data5), messages),
        "decode, MQTT 5": _timed(lambda: decode_all(reads5, codec.V5), messages),
        "decode, MQTT 3.1.1": _timed(lambda: decode_all(reads4, codec.V311), messages),
        "topic parse": _timed(
            lambda: [parser.split_topic(PREFIX, p[0]) for p in publishes], messages
        ),
        "parser (topic + payload)": _timed(
            lambda: [
                parser.decode(PREFIX, t, b, max_payload=cap, retained=r) for t, b, r, _ in publishes
            ],
            messages,
        ),
    }
    cached = parser.CachedDecoder(PREFIX, max_payload=cap)
    costs["parser, memoised topics (the bridge's)"] = _timed(
        lambda: [cached(t, b, r) for t, b, r, _ in publishes], messages
    )
    decoded = [parser.decode(PREFIX, t, b, max_payload=cap) for t, b, _, _ in publishes]
    inbound = [d for d in decoded if isinstance(d, parser.Inbound)]
    costs["batching (waves)"] = _timed(
        lambda: [list(plan.waves(inbound[i : i + BATCH])) for i in range(0, len(inbound), BATCH)],
        messages,
    )
    costs.update(asyncio.run(hub_stages(publishes, devices)))
    rows = [(name, f"{cost:6.2f} µs/message") for name, cost in costs.items()]
    print_table(f"Inbound MQTT stages, {messages} messages, median of {REPEAT}", rows)
    print(f"\nwrote {write_result('mqtt_profile', costs, [costs])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--devices", type=int, default=10_000)
    args = parser.parse_args()
    run(args.messages, args.devices)


if __name__ == "__main__":
    main()
