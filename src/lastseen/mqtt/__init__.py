"""The MQTT bridge: devices' heartbeats, telemetry and last wills in through a real
broker, presence out as retained topics (docs/mqtt.md).

The pure parts (``parser``, ``plan``, ``outbound``, ``backoff``, ``address``) import
no MQTT client; only ``bridge`` does.
"""
