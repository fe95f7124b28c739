"""``--postgres`` / ``LASTSEEN_POSTGRES``: validated as a PostgreSQL URL, password never shown."""

from __future__ import annotations

import pytest

from lastseen.cli import build_parser
from lastseen.errors import ConfigError
from lastseen.settings import load_settings


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://lastseen@db.example.com:5432/lastseen",
        "postgres://u:p@127.0.0.1/fleet?sslmode=require",
        "postgresql:///lastseen",
        "POSTGRESQL://db/x",
    ],
)
def test_postgres_urls_are_accepted(dsn: str) -> None:
    assert load_settings({"postgres": dsn}, {}).postgres == dsn


def test_the_environment_variable_is_read() -> None:
    settings = load_settings({}, {"LASTSEEN_POSTGRES": "postgresql://db/x"})
    assert settings.postgres == "postgresql://db/x"


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("mysql://u:hunter2@db/x", "'mysql://u:***@db/x'"),
        ("host=db password=hunter2 dbname=x", "'host=db password=*** dbname=x'"),
        ("db.example.com:5432", "'db.example.com:5432'"),
    ],
)
def test_anything_else_is_refused_without_showing_the_password(dsn: str, shown: str) -> None:
    with pytest.raises(ConfigError, match="expected a postgresql:// or postgres:// URL") as raised:
        load_settings({"postgres": dsn}, {})
    assert shown in raised.value.message
    assert "hunter2" not in raised.value.message


def test_a_bad_port_is_refused() -> None:
    with pytest.raises(ConfigError, match="invalid port"):
        load_settings({}, {"LASTSEEN_POSTGRES": "postgresql://u:hunter2@db:99999/x"})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--postgres", "mysql://db/x"], "expected a postgresql://"),
        (["--postgres", "postgresql://db/x", "--data-dir", "d"], "not both"),
        (["--postgres", "postgresql://db/x", "--url", "http://h"], "drop --url and --key"),
    ],
)
def test_keys_on_postgres_refuses_bad_usage(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = build_parser().parse_args(["keys", "list", *argv])
    assert args.func(args) == 2
    assert message in capsys.readouterr().err
