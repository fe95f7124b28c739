"""The MQTT bridge's Prometheus metrics, registered on the hub's registry."""

from __future__ import annotations

from collections.abc import Callable

from lastseen.metrics import Registry


class MqttMetrics:
    def __init__(
        self, registry: Registry, *, connected: Callable[[], bool], depth: Callable[[], int]
    ) -> None:
        r = registry
        self.messages = r.counter(
            "lastseen_mqtt_messages_total",
            "Inbound MQTT messages applied to the hub, by topic kind.",
            ["kind"],
        )
        self.rejected = r.counter(
            "lastseen_mqtt_rejected_total",
            "Inbound MQTT messages dropped, by reason (nothing changed).",
            ["reason"],
        )
        self.pauses = r.counter(
            "lastseen_mqtt_read_pauses_total",
            "Times the inbound connection stopped reading because the queue was full "
            "(policy: back-pressure; nothing is dropped).",
        )
        r.gauge(
            "lastseen_mqtt_queue_depth",
            "Inbound MQTT messages waiting to be applied.",
            lambda: {(): float(depth())},
        )
        self.published = r.counter(
            "lastseen_mqtt_published_total",
            "Retained MQTT messages published, by topic kind.",
            ["topic"],
        )
        r.gauge(
            "lastseen_mqtt_connected",
            "1 while connected to the MQTT broker.",
            lambda: {(): 1.0 if connected() else 0.0},
        )
        self.connects = r.counter(
            "lastseen_mqtt_connects_total", "Successful connections to the MQTT broker."
        )
        self.connection_failures = r.counter(
            "lastseen_mqtt_connection_failures_total",
            "Failed connection attempts and lost connections to the MQTT broker.",
        )
        self.resyncs = r.counter(
            "lastseen_mqtt_resyncs_total",
            "Full republishes of retained presence (connect, or the stream fell behind).",
        )
