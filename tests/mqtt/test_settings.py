"""MQTT settings: flags, environment, validation with one line naming the bad value."""

from __future__ import annotations

import pytest

from lastseen.errors import ConfigError
from lastseen.settings import load_settings


def test_defaults_and_environment() -> None:
    settings = load_settings(
        {}, environ={"LASTSEEN_MQTT": "mqtts://hub:secret@broker", "LASTSEEN_MQTT_STRICT": "1"}
    )
    assert settings.mqtt == "mqtts://hub:secret@broker"
    assert settings.mqtt_strict is True
    assert settings.mqtt_prefix == "lastseen/"
    assert settings.mqtt_stale == "online"
    assert load_settings({"mqtt_prefix": "site1"}, environ={}).mqtt_prefix == "site1/"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            {"mqtt": "http://u:secret@x"},
            "--mqtt: the scheme must be mqtt:// or mqtts://, got 'http://u:***@x'",
        ),
        ({"mqtt_prefix": "a/#"}, "--mqtt-prefix: a topic prefix has no wildcards"),
        ({"mqtt_group": "a/b"}, "--mqtt-group: must be one topic level"),
        ({"mqtt_qos": "3"}, "--mqtt-qos: must be >= 0 and <= 2, got '3'"),
        ({"mqtt_stale": "maybe"}, "--mqtt-stale: must be one of online, offline, got 'maybe'"),
        ({"mqtt_max_payload": "10"}, "--mqtt-max-payload: must be >= 64"),
    ],
)
def test_bad_values_name_themselves(flags: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(flags, environ={})
    assert caught.value.message.startswith(message)
    assert "secret" not in caught.value.message
