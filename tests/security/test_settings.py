"""The security settings: flags, environment, the [security] config section, checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from lastseen.errors import ConfigError
from lastseen.settings import load_settings


def test_secure_defaults() -> None:
    settings = load_settings({}, environ={})
    assert settings.open is False
    assert settings.trusted_proxy == ()
    assert settings.cors_origin == ()
    assert settings.tls_cert is None
    assert settings.ingest_register is True
    assert settings.default_profile.min_interval == 0.0


@pytest.mark.parametrize(("raw", "value"), [("1", True), ("yes", True), ("0", False), ("", False)])
def test_open_reads_lastseen_open(raw: str, value: bool) -> None:
    assert load_settings({}, environ={"LASTSEEN_OPEN": raw}).open is value


def test_open_and_an_admin_key_exclude_each_other() -> None:
    with pytest.raises(ConfigError, match="exclude each other"):
        load_settings({"open": True}, environ={"LASTSEEN_ADMIN_KEY": "k"})


def test_lists_come_from_repeated_flags_commas_or_toml(tmp_path: Path) -> None:
    flags = {"trusted_proxy": ["10.0.0.1", "192.168.0.0/16,::1"]}
    assert load_settings(flags, environ={}).trusted_proxy == (
        "10.0.0.1",
        "192.168.0.0/16",
        "::1",
    )
    env = {"LASTSEEN_CORS_ORIGIN": "https://a.example, http://b.example:8080/"}
    assert load_settings({}, environ=env).cors_origin == (
        "https://a.example",
        "http://b.example:8080",
    )
    config = tmp_path / "c.toml"
    config.write_text(
        '[security]\ntrusted_proxy = ["127.0.0.1"]\ningest_register = false\n'
        "key_max_per_minute = 600\naudit_retention = 86400\n"
        "[presence]\nmin_interval = 1\nmax_per_minute = 120\n"
    )
    settings = load_settings({"config": str(config)}, environ={})
    assert settings.trusted_proxy == ("127.0.0.1",)
    assert settings.ingest_register is False
    assert settings.key_max_per_minute == 600
    assert settings.audit_retention == 86400.0
    assert (settings.default_profile.min_interval, settings.default_profile.max_per_minute) == (
        1.0,
        120,
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"trusted_proxy": "proxy.example"}, "--trusted-proxy: expected IP addresses"),
        ({"cors_origin": "dash.example.com"}, "--cors-origin: expected origins"),
        ({"cors_origin": "https://x.example/path"}, "--cors-origin: expected origins"),
        ({"open": "maybe"}, "--open: expected true or false"),
        ({"tls_cert": "/nonexistent.pem", "tls_key": "/x"}, "--tls-cert: no such file"),
        ({"max_per_minute": "-1"}, "--max-per-minute: must be >= 0"),
    ],
)
def test_bad_values_are_named(flags: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(flags, environ={})
    assert message in refused.value.message


def test_a_certificate_needs_its_key(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(ConfigError, match="go together"):
        load_settings({"tls_cert": str(cert)}, environ={})
