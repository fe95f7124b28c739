"""Settings: precedence, validation messages, config file profiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from lastseen.errors import ConfigError
from lastseen.presence import Profile, ProfileRegistry
from lastseen.settings import Settings, load_settings


def test_defaults_match_the_product_contract() -> None:
    settings = load_settings({}, environ={})
    assert settings.port == 8080
    assert settings.default_profile.stale_after == 40.0
    assert settings.default_profile.offline_after == 300.0
    assert settings.admin_key is None


def test_flag_beats_environment_beats_file_beats_default(tmp_path: Path) -> None:
    config = tmp_path / "lastseen.toml"
    config.write_text("[server]\nport = 7000\nhost = '0.0.0.0'\n[presence]\nstale_after = 5\n")
    env = {"LASTSEEN_CONFIG": str(config), "LASTSEEN_PORT": "7100"}
    from_env = load_settings({}, environ=env)
    assert (from_env.port, from_env.host, from_env.stale_after) == (7100, "0.0.0.0", 5.0)
    from_flag = load_settings({"port": "7200"}, environ=env)
    assert from_flag.port == 7200
    assert load_settings({}, environ={}).port == 8080


def test_every_flag_reads_its_environment_variable() -> None:
    env = {
        "LASTSEEN_HOST": "::1",
        "LASTSEEN_PORT": "9",
        "LASTSEEN_DATA_DIR": "/tmp/x",
        "LASTSEEN_STALE_AFTER": "0.5",
        "LASTSEEN_OFFLINE_AFTER": "1",
        "LASTSEEN_ADMIN_KEY": "secret",
        "LASTSEEN_FLUSH_INTERVAL": "0.25",
    }
    settings = load_settings({}, environ=env)
    assert settings.host == "::1"
    assert settings.port == 9
    assert settings.data_dir == Path("/tmp/x")
    assert settings.default_profile.stale_after == 0.5
    assert settings.default_profile.offline_after == 1.0
    assert settings.admin_key == "secret"
    assert settings.flush_interval == 0.25


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"port": "http"}, "--port: expected an integer, got 'http'"),
        ({"port": "70000"}, "--port: must be >= 0 and <= 65535, got '70000'"),
        ({"stale_after": "-1"}, "--stale-after: must be a number > 0, got '-1'"),
        ({"stale_after": "nan"}, "--stale-after: must be a number > 0, got 'nan'"),
        ({"offline_after": "soon"}, "--offline-after: expected a number, got 'soon'"),
        ({"stale_after": "10", "offline_after": "5"}, "stale-after (10) must not exceed"),
        ({"log_level": "loud"}, "--log-level: must be one of debug, info, warning, error"),
        ({"config": "/nonexistent/lastseen.toml"}, "config file not found"),
    ],
)
def test_bad_values_are_named_in_one_line(flags: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(flags, environ={})
    assert message in refused.value.message
    assert "\n" not in refused.value.message


def test_environment_errors_name_the_variable() -> None:
    with pytest.raises(ConfigError, match="LASTSEEN_PORT: expected an integer"):
        load_settings({}, environ={"LASTSEEN_PORT": "eighty"})


def test_profiles_come_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        "[profiles.sensor]\nstale_after = 5\noffline_after = 30\nflap_threshold = 3\n"
        "[profiles.battery]\nstale_after = 900\noffline_after = 3600\n"
    )
    settings = load_settings({"config": str(config)}, environ={})
    sensor = settings.profiles.get("sensor")
    assert (sensor.stale_after, sensor.offline_after, sensor.flap_threshold) == (5.0, 30.0, 3)
    assert settings.profiles.get("battery").offline_after == 3600.0
    assert settings.profiles.default.stale_after == 40.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server\n", "invalid TOML"),
        ("[nonsense]\nx = 1\n", "unknown section [nonsense]"),
        ("[server]\nprot = 1\n", "unknown key server.prot"),
        ("[profiles.fast]\nstale_after = 10\noffline_after = 5\n", "[profiles.fast]"),
        ("[profiles.fast]\nstale_afer = 10\n", "unknown key stale_afer"),
        ("[profiles.default]\nstale_after = 10\n", "set the default profile in [presence]"),
        ("[profiles.x]\nflap_threshold = 'many'\n", "flap_threshold: expected an integer"),
        ("profiles = 3\n", "[profiles] must be a table"),
    ],
)
def test_bad_config_files_are_refused_with_the_place(
    tmp_path: Path, text: str, message: str
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(ConfigError) as refused:
        load_settings({"config": str(config)}, environ={})
    assert message in refused.value.message
    assert str(config) in refused.value.message


def test_thresholds_given_in_code_are_the_default_profiles() -> None:
    made = Settings(stale_after=3600.0, offline_after=7200.0, max_per_minute=5)
    assert made.default_profile == Profile(
        stale_after=3600.0, offline_after=7200.0, max_per_minute=5
    )
    assert (
        made.default_profile
        == load_settings(
            {"stale_after": "3600", "offline_after": "7200", "max_per_minute": "5"}, environ={}
        ).default_profile
    )
    fast = Profile(name="fast", stale_after=1.0, offline_after=2.0)
    own = Settings(stale_after=9.0, profiles=ProfileRegistry([Profile(stale_after=5.0), fast]))
    assert own.default_profile.stale_after == 5.0  # a default profile given wins
    assert Settings(stale_after=9.0, profiles=ProfileRegistry([fast])).profiles.get("fast") == fast
    assert Settings().default_profile == Profile()
