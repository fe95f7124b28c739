"""Inbound MQTT heartbeats through the local Mosquitto into one hub process.

A real ``lastseen serve --mqtt`` process subscribes (shared subscription, MQTT v5).
The load generator pre-encodes every PUBLISH (empty heartbeats to
``{prefix}dev-NNNNNN/heartbeat`` for D devices) and writes them in 256 KiB chunks
over raw sockets, from ``--publishers`` connections (threads: the work is the
kernel's, not Python's). Every device is made online first, so the measured pass is
the hot path (no transition, no SQL write), like the HTTP throughput benchmark.

The rate is measured on the hub's side: its ``lastseen_mqtt_messages_total`` counter,
polled from ``/metrics`` every 0.1 s, from the first poll that saw the pass's
messages to the one that saw the last. The publishers are paced to stay at most
``--lead`` messages ahead of that counter: the broker holds only the hub's receive
window plus ``max_queued_messages`` (1000) QoS 1 messages for one subscriber and
drops the rest, and QoS 0 has no flow control at all, so an unpaced generator
measures the broker's drops, not the hub.

``--offer`` measures the generator and the broker alone (nobody subscribed): how
fast they take the messages, i.e. what can be offered to a hub, and then how fast
the broker delivers them to lastseen's subscriber connection with no hub behind it
(counting only; at QoS 1 acknowledging at once): the broker's ceiling for one hub. ``--profile`` is
in-process: microseconds per message of each inbound stage on this machine.

    .venv/bin/python -m bench.mqtt_ingest                         # 200 000 messages, 3 runs
    .venv/bin/python -m bench.mqtt_ingest --messages 20000 --runs 1
    .venv/bin/python -m bench.mqtt_ingest --offer
    .venv/bin/python -m bench.mqtt_ingest --profile
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.common import median, print_table, write_result
from lastseen.mqtt import codec, subscriber
from lastseen.testing import HubProcess

HOST, PORT = "127.0.0.1", 1883
CHUNK = 256 * 1024
POLL = 0.1
_COUNTER = re.compile(r'^lastseen_mqtt_messages_total\{kind="heartbeat"\} (\S+)$', re.M)
_PAUSES = re.compile(r"^lastseen_mqtt_read_pauses_total (\S+)$", re.M)


def cpu_seconds(hub: HubProcess) -> float:
    """User + system CPU time of the hub process so far (Linux ``/proc``)."""
    assert hub.proc is not None
    fields = Path(f"/proc/{hub.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def processed(client: httpx.Client) -> tuple[int, int]:
    text = client.get("/metrics").text
    found, pauses = _COUNTER.search(text), _PAUSES.search(text)
    return (
        int(float(found.group(1))) if found else 0,
        int(float(pauses.group(1))) if pauses else 0,
    )


class Publisher:
    """One raw MQTT 3.1.1 publishing connection; at QoS 1 a thread drains PUBACKs."""

    def __init__(self, qos: int) -> None:
        self.sock = socket.create_connection((HOST, PORT), timeout=30)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * CHUNK)
        self.sock.sendall(codec.connect(f"bench-{uuid.uuid4().hex[:8]}", version=codec.V311))
        if self.sock.recv(4)[:1] != b"\x20":
            raise ConnectionError("the broker refused the publisher")
        self.acked = 0
        self._reader: threading.Thread | None = None
        if qos:
            self._reader = threading.Thread(target=self._drain, daemon=True)
            self._reader.start()

    def _drain(self) -> None:
        received = 0
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except OSError:
                return
            if not data:
                return
            received += len(data)
            self.acked = received // 4  # a PUBACK is 4 bytes

    def close(self) -> None:
        try:
            self.sock.sendall(codec.DISCONNECT)
        finally:
            self.sock.close()


def encode(prefix: str, devices: int, messages: int, qos: int, publishers: int) -> list[bytes]:
    """Each publisher's whole pass as one buffer of PUBLISH packets (3.1.1)."""
    topics = [f"{prefix}dev-{i:06d}/heartbeat" for i in range(devices)]
    streams: list[list[bytes]] = [[] for _ in range(publishers)]
    for i in range(messages):
        packet = codec.publish(
            topics[i % devices], b"", qos=qos, packet_id=i % 65535 + 1, version=codec.V311
        )
        streams[i % publishers].append(packet)
    return [b"".join(s) for s in streams]


def _send(
    publisher: Publisher, data: bytes, size: int, allowed: list[int], sent: list[int], me: int
) -> None:
    """Write ``data`` (packets of ``size`` bytes) while under this publisher's allowance."""
    view = memoryview(data)
    count = offset = 0
    while offset < len(data):
        if count >= allowed[me]:
            time.sleep(0.002)
            continue
        end = min(len(data), offset + CHUNK // size * size, offset + (allowed[me] - count) * size)
        publisher.sock.sendall(view[offset:end])
        count += (end - offset) // size
        sent[me] = count
        offset = end


def _pass(
    hub: HubProcess,
    prefix: str,
    devices: int,
    messages: int,
    qos: int,
    publishers: int,
    lead: int,
) -> dict[str, Any]:
    buffers = encode(prefix, devices, messages, qos, publishers)
    per = [
        messages // publishers + (1 if i < messages % publishers else 0) for i in range(publishers)
    ]
    conns = [Publisher(qos) for _ in range(publishers)]
    # allowed[i]: how many messages publisher i may have sent by now.
    allowed = [min(p, lead // publishers) for p in per]
    sent = [0] * publishers
    threads = [
        threading.Thread(
            target=_send, args=(conns[i], buffers[i], len(buffers[i]) // per[i], allowed, sent, i)
        )
        for i in range(publishers)
    ]
    with hub.client() as client:
        before, pauses_before = processed(client)
        cpu_before = cpu_seconds(hub)
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        samples = [(started, before)]
        idle_since = started
        while samples[-1][1] < before + messages:
            time.sleep(POLL)
            now, count = time.perf_counter(), processed(client)[0]
            done = count - before
            for i in range(publishers):
                allowed[i] = min(per[i], (done + lead) // publishers)
            if count != samples[-1][1]:
                samples.append((now, count))
                idle_since = now
            elif now - idle_since > 3.0:
                break
        publish_seconds = time.perf_counter() - started
        for thread in threads:
            thread.join(timeout=5)
        after, pauses_after = processed(client)
        cpu = cpu_seconds(hub) - cpu_before
    for conn in conns:
        conn.close()
    first = next(((t, c) for t, c in samples if c > before), samples[0])
    last = samples[-1]
    span = last[0] - first[0]
    return {
        "qos": qos,
        "messages": messages,
        "devices": devices,
        "publishers": publishers,
        "processed": after - before,
        "read_pauses": pauses_after - pauses_before,
        "offered_rate": round(sum(sent) / publish_seconds),
        "hub_rate": round((last[1] - first[1]) / span) if span > 0 else None,
        # The hub's own CPU per message (HTTP polls included): what one free core
        # would sustain, whatever else the shared machine was doing.
        "hub_cpu_us_per_message": round(cpu / max(1, after - before) * 1e6, 2),
    }


def offer(messages: int, devices: int, publishers: int) -> dict[str, Any]:
    """The generator and the broker alone: publish to topics nobody subscribes to."""
    out: dict[str, Any] = {}
    prefix = f"bench-offer-{uuid.uuid4().hex[:8]}/"
    for qos in (0, 1):
        buffers = encode(prefix, devices, messages, qos, publishers)
        conns = [Publisher(qos) for _ in range(publishers)]
        started = time.perf_counter()
        threads = [
            threading.Thread(target=c.sock.sendall, args=(b,))
            for c, b in zip(conns, buffers, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if qos:
            deadline = time.monotonic() + 30
            while sum(c.acked for c in conns) < messages and time.monotonic() < deadline:
                time.sleep(0.001)
        seconds = time.perf_counter() - started
        for conn in conns:
            conn.close()
        out[f"qos{qos}"] = round(messages / seconds)
    return out


def _settle(hub: HubProcess, devices: int, timeout: float = 60.0) -> None:
    pattern = re.compile(r'^lastseen_mqtt_published_total\{topic="availability"\} (\S+)$', re.M)
    deadline = time.monotonic() + timeout
    with hub.client() as client:
        while time.monotonic() < deadline:
            found = pattern.search(client.get("/metrics").text)
            if found and float(found.group(1)) >= devices:
                return
            time.sleep(0.2)


def _bare(prefix: str, qos: int, version: int, received: Any, ready: Any, stop: Any) -> None:
    """A child process: lastseen's subscriber connection, counting into ``received``."""

    def sink(connection: subscriber.Subscriber, publishes: list[codec.Publish]) -> None:
        with received.get_lock():
            received.value += len(publishes)
        if qos:
            connection.ack([p[3] for p in publishes])

    async def serve() -> None:
        connection = await subscriber.open_subscriber(
            HOST, PORT, sink,
            connect=codec.connect(f"bare-{uuid.uuid4().hex[:8]}", version=version),
            filters=[(f"$share/bare/{prefix}+/heartbeat", qos)],
            keepalive=30, maximum_packet=1 << 20, version=version,
        )  # fmt: skip
        ready.set()
        await asyncio.to_thread(stop.wait)
        connection.close()

    asyncio.run(serve())


def bare_subscriber(
    messages: int, devices: int, qos: int, lead: int, version: int = codec.V5
) -> dict[str, Any]:
    """The broker's ceiling for one subscriber: lastseen's subscriber connection in its
    own process with a sink that only counts (and at QoS 1 acknowledges at once), no
    hub; paced like a pass."""
    prefix = f"bench-bare-{uuid.uuid4().hex[:8]}/"
    received = multiprocessing.Value("q", 0)
    ready, stop = multiprocessing.Event(), multiprocessing.Event()
    child = multiprocessing.Process(
        target=_bare, args=(prefix, qos, version, received, ready, stop)
    )
    child.start()
    ready.wait(10)
    data = encode(prefix, devices, messages, qos, 1)[0]
    publisher = Publisher(qos)
    allowed, sent = [min(messages, lead)], [0]
    sender = threading.Thread(
        target=_send, args=(publisher, data, len(data) // messages, allowed, sent, 0)
    )
    started = time.perf_counter()
    sender.start()
    last, idle = -1, started
    while received.value < messages and time.perf_counter() - idle < 3.0:
        time.sleep(0.01)
        allowed[0] = min(messages, received.value + lead)
        if received.value != last:
            last, idle = received.value, time.perf_counter()
    seconds = time.perf_counter() - started
    sender.join(timeout=5)
    publisher.close()
    stop.set()
    child.join(timeout=10)
    return {"received": received.value, "rate": round(received.value / seconds)}


def run(
    messages: int, devices: int, runs: int, qos_levels: list[int], publishers: int, lead: int
) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lastseen-bench-") as tmp:
        prefix = f"bench-{uuid.uuid4().hex[:8]}/"
        hub = HubProcess(
            Path(tmp) / "data",
            "--mqtt", f"mqtt://{HOST}:{PORT}", "--mqtt-prefix", prefix,
            "--mqtt-group", f"bench-{uuid.uuid4().hex[:6]}", "--log-level", "warning",
            "--mqtt-queue", str(max(100_000, lead * 2)),
        )  # fmt: skip
        hub.start()
        try:
            with hub.client() as client:
                deadline = time.monotonic() + 10
                while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
                    time.sleep(0.05)
            # Warm-up: every device registered and online, so passes are the hot path.
            _pass(hub, prefix, devices, devices, 1, 1, min(lead, 2000))
            # ... and their retained presence published, so that outbound work (two
            # QoS 1 publishes per device) does not overlap the measured passes.
            _settle(hub, devices)
            for _ in range(runs):
                for qos in qos_levels:
                    result = _pass(hub, prefix, devices, messages, qos, publishers, lead)
                    result["loadavg"] = round(os.getloadavg()[0], 2)
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
            "hub_cpu_us_per_message": median([r["hub_cpu_us_per_message"] for r in mine]),
        }
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
    parser.add_argument("--publishers", type=int, default=1)
    parser.add_argument("--lead", type=int, default=40_000, help="messages ahead of the hub")
    parser.add_argument("--offer", action="store_true", help="generator + broker only")
    parser.add_argument("--profile", action="store_true", help="in-process stage costs")
    args = parser.parse_args()
    if args.profile:
        from bench.mqtt_profile import run as profile

        profile(args.messages, args.devices)
        return
    if args.offer:
        rates = offer(args.messages, args.devices, args.publishers)
        bare = {q: bare_subscriber(args.messages, args.devices, q, args.lead) for q in (0, 1)}
        print_table(
            f"Offered by {args.publishers} raw publishers, broker only ({args.messages} messages)",
            [(f"QoS {q}", f"{rates[f'qos{q}']} messages/s") for q in (0, 1)]
            + [
                (
                    f"QoS {q}, to a bare subscriber",
                    f"{b['rate']} messages/s, {b['received']} received",
                )
                for q, b in bare.items()
            ],
        )
        return
    outcome = run(args.messages, args.devices, args.runs, args.qos, args.publishers, args.lead)
    summary = outcome["summary"]
    print_table(
        f"MQTT heartbeats into one hub ({args.messages} messages, {args.devices} devices, "
        f"median of {args.runs}, load average {os.getloadavg()[0]:.2f})",
        [
            (f"QoS {q}", f"{summary[f'qos{q}']['hub_rate']:.0f} heartbeats/s  "
             f"hub CPU {summary[f'qos{q}']['hub_cpu_us_per_message']:.1f} µs/message  "
             f"all processed: {summary[f'qos{q}']['processed_all']}")
            for q in args.qos
        ],
    )  # fmt: skip
    print(f"\nwrote {write_result('mqtt_ingest', summary, outcome['runs'])}")


if __name__ == "__main__":
    main()
