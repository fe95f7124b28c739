"""Scale-out settings: flags, environment, validation messages naming the bad value."""

from __future__ import annotations

import pytest

from lastseen.errors import ConfigError
from lastseen.settings import load_settings


def test_scale_out_flags_and_environment() -> None:
    env = {
        "LASTSEEN_REDIS": "redis+cluster://127.0.0.1:7000",
        "LASTSEEN_WORKERS": "4",
        "LASTSEEN_REDIS_PREFIX": "site-a",
    }
    settings = load_settings({}, environ=env)
    assert settings.redis == "redis+cluster://127.0.0.1:7000"
    assert (settings.workers, settings.redis_prefix, settings.redis_cluster) == (4, "site-a", False)
    flagged = load_settings({"redis": "redis://h:6379/0", "redis_cluster": True}, environ={})
    assert flagged.redis_cluster
    assert flagged.redis_prefix == "ls"
    assert flagged.workers == 1


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"redis": "http://h"}, "'http://h'"),
        ({"redis": "redis://h", "redis_prefix": "a{b}"}, "'a{b}'"),
        ({"workers": "3"}, "--workers 3"),
        ({"redis": "redis://h", "workers": "0"}, "'0'"),
        ({"redis": "redis://h", "postgres": "mysql://h/db"}, "--postgres"),
    ],
)
def test_bad_scale_out_settings_name_the_value(flags: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(flags, environ={})
    assert message in refused.value.message
