"""Settings: one frozen object built from flags, ``LASTSEEN_*`` variables and a TOML file.

Precedence, highest first: command-line flag, environment variable, config file,
built-in default. Every value is validated once, at start-up, and a bad one stops
the hub with a message that names the value and where it came from.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lastseen.errors import ConfigError, InvalidInput
from lastseen.notify.models import AlertRule
from lastseen.notify.validate import rule as parse_rule
from lastseen.presence import DEFAULT_PROFILE, Profile, ProfileRegistry

ENV_PREFIX = "LASTSEEN_"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything ``lastseen serve`` needs, validated."""

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("data")
    stale_after: float = 40.0
    offline_after: float = 300.0
    config: Path | None = None
    redis: str | None = None
    postgres: str | None = None
    #: Scale-out: the hash tag of every Redis key (several hubs can share a Redis),
    #: whether ``redis`` is a Redis Cluster, and how many processes serve on one host.
    redis_prefix: str = "ls"
    redis_cluster: bool = False
    workers: int = 1
    mqtt: str | None = None
    admin_key: str | None = None
    #: Seconds between write-behind flushes of ``last_seen`` (the most it can lag).
    flush_interval: float = 1.0
    #: Transitions older than this many seconds are pruned from history.
    event_retention: float = 7 * 86400.0
    #: Recent events kept in memory for fast stream resume.
    replay_buffer: int = 10_000
    #: Messages a stream subscriber may fall behind before it is reset.
    subscriber_queue: int = 10_000
    #: Seconds between SSE keep-alive comments.
    keepalive_interval: float = 15.0
    #: Largest request body accepted, in bytes.
    max_body: int = 1_048_576
    #: Largest batch in ``POST /v1/heartbeats``.
    max_batch: int = 1000
    #: Most transitions committed in one store transaction by the sweeper.
    sweep_chunk: int = 5000
    log_level: str = "info"
    log_format: str = "text"
    #: Rate limits of the default profile (0 disables): see ``Profile``.
    min_interval: float = 0.0
    max_per_minute: int = 0
    # --- security (docs/security.md) ---
    #: No authentication at all: a local trial. Said plainly in the log and /healthz.
    open: bool = False
    #: May ingest keys register unknown device ids by sending them a heartbeat?
    ingest_register: bool = True
    #: Requests per minute allowed to each non-admin key that sets no limit of its own.
    key_max_per_minute: int = 0
    #: Open SSE/WebSocket streams allowed per key.
    max_streams_per_key: int = 100
    #: Audit records older than this many seconds are pruned.
    audit_retention: float = 365 * 86400.0
    #: Seconds between checks for keys changed by another process (CLI, other instances).
    key_refresh: float = 5.0
    #: Serve HTTPS/WSS with this certificate chain and private key (PEM files).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: Addresses or networks whose ``X-Forwarded-For`` / ``X-Forwarded-Proto`` are believed.
    trusted_proxy: tuple[str, ...] = ()
    #: Origins allowed to call the API from a browser (CORS); empty = none.
    cors_origin: tuple[str, ...] = ()
    # --- MQTT bridge (docs/mqtt.md); active with ``mqtt`` set ---
    #: Topic prefix of every device topic, ending in ``/``.
    mqtt_prefix: str = "lastseen/"
    #: MQTT client id of this instance; None: ``lastseen-`` and random hex.
    mqtt_client_id: str | None = None
    #: Shared-subscription group: instances in one group split the inbound messages.
    mqtt_group: str = "lastseen"
    #: QoS of the inbound subscriptions and of the retained presence publishes.
    mqtt_qos: int = 1
    #: Refuse messages of unregistered device ids instead of registering them.
    mqtt_strict: bool = False
    #: Largest inbound payload accepted, in bytes.
    mqtt_max_payload: int = 65_536
    #: Inbound messages buffered before new ones are dropped (policy: drop newest).
    mqtt_queue: int = 100_000
    #: What ``{prefix}{id}/availability`` says for a stale device: online or offline.
    mqtt_stale: str = "online"
    #: Publish Home Assistant MQTT discovery configs (a connectivity binary sensor).
    mqtt_discovery: bool = False
    mqtt_discovery_prefix: str = "homeassistant/"
    #: Seconds between MQTT keep-alive pings to the broker.
    mqtt_keepalive: int = 30
    #: CA bundle (PEM) to verify an ``mqtts://`` broker with; default: the system's.
    mqtt_ca: Path | None = None
    # --- notifications (docs/notifications.md) ---
    #: Let webhooks reach loopback, private, link-local and reserved addresses.
    webhook_allow_private: bool = False
    #: Networks webhooks may reach even though they are not public.
    webhook_allow: tuple[str, ...] = ()
    #: Seconds one webhook attempt may take.
    webhook_timeout: float = 10.0
    #: Retry budget of one delivery: attempts, and seconds since it was queued.
    webhook_max_attempts: int = 10
    webhook_max_age: float = 86400.0
    #: Backoff: full jitter under base * 2^(attempt-1), capped.
    webhook_backoff: float = 1.0
    webhook_backoff_max: float = 600.0
    #: Webhook requests in flight at once: in all, and per subscription.
    webhook_concurrency: int = 32
    webhook_subscription_concurrency: int = 4
    #: Undelivered deliveries kept; beyond it new ones are dropped (counted).
    webhook_max_queue: int = 100_000
    #: Alert rules of the config file's ``[alerts.NAME]`` tables.
    alerts: tuple[AlertRule, ...] = field(default=(), compare=False)
    profiles: ProfileRegistry = field(default_factory=ProfileRegistry, compare=False)

    def __post_init__(self) -> None:
        # Settings made in code with thresholds and no default profile of their own:
        # the thresholds are the default profile's, as ``load_settings`` makes them
        # (else they would be kept here and silently never used).
        given = Profile(
            stale_after=self.stale_after,
            offline_after=self.offline_after,
            min_interval=self.min_interval,
            max_per_minute=self.max_per_minute,
        )
        if self.profiles.default == Profile() and given != Profile():
            object.__setattr__(self, "profiles", ProfileRegistry([*self.profiles, given]))

    @property
    def default_profile(self) -> Profile:
        return self.profiles.default


def _parse_float(name: str, raw: Any, *, minimum: float = 0.0, strict: bool = True) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        bound = ">" if strict else ">="
        raise ConfigError(f"{name}: must be a number {bound} {minimum:g}, got {raw!r}")
    return value


def _parse_int(name: str, raw: Any, *, minimum: int = 1, maximum: int | None = None) -> int:
    if isinstance(raw, bool):
        raise ConfigError(f"{name}: expected an integer, got {raw!r}")
    try:
        value = int(str(raw), 10)
    except ValueError:
        raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and <= {maximum}" if maximum is not None else ""
        raise ConfigError(f"{name}: must be >= {minimum}{upper}, got {raw!r}")
    return value


def _parse_choice(choices: tuple[str, ...]) -> Callable[[str, Any], str]:
    def parse(name: str, raw: Any) -> str:
        value = str(raw).lower()
        if value not in choices:
            raise ConfigError(f"{name}: must be one of {', '.join(choices)}, got {raw!r}")
        return value

    return parse


def _parse_text(name: str, raw: Any) -> str:
    if not isinstance(raw, str) or not raw:
        raise ConfigError(f"{name}: expected a non-empty string, got {raw!r}")
    return raw


def _hide_password(dsn: str) -> str:
    """``dsn`` with its password (URL userinfo or ``password=``) replaced by ``***``."""
    dsn = re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", dsn)
    return re.sub(r"^([a-z][a-z0-9+.-]*://[^/@:]*):[^/@]*@", r"\1:***@", dsn, flags=re.I)


def parse_postgres_url(name: str, raw: Any) -> str:
    """``raw`` as a PostgreSQL URL; ``ConfigError`` naming ``name`` (password hidden)."""
    dsn = _parse_text(name, raw).strip()
    shown = _hide_password(dsn)
    parts = urlsplit(dsn)
    if parts.scheme.lower() not in ("postgresql", "postgres"):
        raise ConfigError(
            f"{name}: expected a postgresql:// or postgres:// URL "
            f"(e.g. postgresql://lastseen@db.example.com:5432/lastseen), got {shown!r}"
        )
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise ConfigError(f"{name}: invalid port in {shown!r}") from None
    return dsn


def _parse_path(name: str, raw: Any) -> Path:
    return Path(_parse_text(name, raw)).expanduser()


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def _parse_bool(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{name}: expected true or false (1/0, yes/no, on/off), got {raw!r}")


def _items(name: str, raw: Any) -> list[str]:
    """A list from a TOML array, repeated flags, or one comma-separated string."""
    if isinstance(raw, str):
        parts = raw.split(",")
    elif isinstance(raw, list | tuple):
        parts = []
        for item in raw:
            if not isinstance(item, str):
                raise ConfigError(f"{name}: expected strings, got {item!r}")
            parts.extend(item.split(","))
    else:
        raise ConfigError(f"{name}: expected a list of strings, got {raw!r}")
    return [part.strip() for part in parts if part.strip()]


def _parse_networks(name: str, raw: Any) -> tuple[str, ...]:
    values = _items(name, raw)
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ConfigError(
                f"{name}: expected IP addresses or networks (e.g. 10.0.0.5, 10.0.0.0/8), "
                f"got {value!r}"
            ) from None
    return tuple(values)


def _parse_origins(name: str, raw: Any) -> tuple[str, ...]:
    values = _items(name, raw)
    for value in values:
        scheme, sep, rest = value.partition("://")
        valid = value == "*" or (
            sep and scheme in ("http", "https") and rest and "/" not in rest.rstrip("/")
        )
        if not valid:
            raise ConfigError(
                f"{name}: expected origins like https://dash.example.com (or *), got {value!r}"
            )
    return tuple(v.rstrip("/") for v in values)


def _parse_file(name: str, raw: Any) -> Path:
    path = _parse_path(name, raw)
    if not path.is_file():
        raise ConfigError(f"{name}: no such file: {path}")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"{name}: not readable: {path}")
    return path


_REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")


def _parse_redis_url(name: str, raw: Any) -> str:
    value = _parse_text(name, raw)
    if not value.startswith(_REDIS_SCHEMES):
        raise ConfigError(
            f"{name}: expected a URL like redis://host:6379/0 or redis+cluster://host:7000, "
            f"got {value!r}"
        )
    return str(value)


def _parse_redis_prefix(name: str, raw: Any) -> str:
    value = _parse_text(name, raw)
    if len(value) > 64 or any(c in value for c in "{} \t\n"):
        raise ConfigError(
            f"{name}: expected 1-64 characters without braces or spaces, got {value!r}"
        )
    return str(value)


def _parse_mqtt_url(name: str, raw: Any) -> str:
    from lastseen.mqtt.address import parse_broker_url

    url = _parse_text(name, raw)
    try:
        parse_broker_url(url)
    except ValueError as exc:
        # Never echo a password into the terminal or a log.
        shown = re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url)
        raise ConfigError(f"{name}: {exc}, got {shown!r}") from None
    return url


def _parse_topic_prefix(name: str, raw: Any) -> str:
    value = _parse_text(name, raw)
    if any(c in value for c in "+#\0") or value.startswith("$") or "//" in value:
        raise ConfigError(
            f"{name}: a topic prefix has no wildcards (+ #), no NUL, no empty level "
            f"and does not start with $, got {raw!r}"
        )
    return value if value.endswith("/") else value + "/"


def _parse_topic_level(name: str, raw: Any) -> str:
    value = _parse_text(name, raw)
    if any(c in value for c in "/+#\0") or len(value) > 128:
        raise ConfigError(f"{name}: must be one topic level (no / + #), got {raw!r}")
    return value


_PARSERS: dict[str, Callable[[str, Any], Any]] = {
    "host": _parse_text,
    "port": lambda n, v: _parse_int(n, v, minimum=0, maximum=65535),
    "data_dir": _parse_path,
    "stale_after": _parse_float,
    "offline_after": _parse_float,
    "config": _parse_path,
    "redis": _parse_redis_url,
    "postgres": parse_postgres_url,
    "redis_prefix": _parse_redis_prefix,
    "redis_cluster": _parse_bool,
    "workers": lambda n, v: _parse_int(n, v, minimum=1, maximum=64),
    "mqtt": _parse_mqtt_url,
    "admin_key": _parse_text,
    "flush_interval": _parse_float,
    "event_retention": _parse_float,
    "replay_buffer": lambda n, v: _parse_int(n, v, minimum=1),
    "subscriber_queue": lambda n, v: _parse_int(n, v, minimum=16),
    "keepalive_interval": _parse_float,
    "max_body": lambda n, v: _parse_int(n, v, minimum=1024),
    "max_batch": lambda n, v: _parse_int(n, v, minimum=1, maximum=100_000),
    "sweep_chunk": lambda n, v: _parse_int(n, v, minimum=1),
    "log_level": _parse_choice(("debug", "info", "warning", "error")),
    "log_format": _parse_choice(("text", "json")),
    "min_interval": lambda n, v: _parse_float(n, v, strict=False),
    "max_per_minute": lambda n, v: _parse_int(n, v, minimum=0),
    "open": _parse_bool,
    "ingest_register": _parse_bool,
    "key_max_per_minute": lambda n, v: _parse_int(n, v, minimum=0),
    "max_streams_per_key": lambda n, v: _parse_int(n, v, minimum=1),
    "audit_retention": _parse_float,
    "key_refresh": _parse_float,
    "tls_cert": _parse_file,
    "tls_key": _parse_file,
    "trusted_proxy": _parse_networks,
    "cors_origin": _parse_origins,
    "mqtt_prefix": _parse_topic_prefix,
    "mqtt_client_id": _parse_topic_level,
    "mqtt_group": _parse_topic_level,
    "mqtt_qos": lambda n, v: _parse_int(n, v, minimum=0, maximum=2),
    "mqtt_strict": _parse_bool,
    "mqtt_max_payload": lambda n, v: _parse_int(n, v, minimum=64, maximum=268_435_455),
    "mqtt_queue": lambda n, v: _parse_int(n, v, minimum=16),
    "mqtt_stale": _parse_choice(("online", "offline")),
    "mqtt_discovery": _parse_bool,
    "mqtt_discovery_prefix": _parse_topic_prefix,
    "mqtt_keepalive": lambda n, v: _parse_int(n, v, minimum=1, maximum=65535),
    "mqtt_ca": _parse_file,
    "webhook_allow_private": _parse_bool,
    "webhook_allow": _parse_networks,
    "webhook_timeout": _parse_float,
    "webhook_max_attempts": lambda n, v: _parse_int(n, v, minimum=1, maximum=1000),
    "webhook_max_age": _parse_float,
    "webhook_backoff": _parse_float,
    "webhook_backoff_max": _parse_float,
    "webhook_concurrency": lambda n, v: _parse_int(n, v, minimum=1, maximum=10_000),
    "webhook_subscription_concurrency": lambda n, v: _parse_int(n, v, minimum=1, maximum=1000),
    "webhook_max_queue": lambda n, v: _parse_int(n, v, minimum=1),
}

#: Config-file sections and the settings they may hold.
_FILE_SECTIONS = {
    "server": {
        "host",
        "port",
        "data_dir",
        "admin_key",
        "max_body",
        "max_batch",
        "log_level",
        "log_format",
    },
    "presence": {
        "stale_after",
        "offline_after",
        "flush_interval",
        "sweep_chunk",
        "min_interval",
        "max_per_minute",
    },
    "streams": {"event_retention", "replay_buffer", "subscriber_queue", "keepalive_interval"},
    "backends": {"redis", "postgres", "mqtt", "redis_prefix", "redis_cluster", "workers"},
    "security": {
        "open",
        "ingest_register",
        "key_max_per_minute",
        "max_streams_per_key",
        "audit_retention",
        "key_refresh",
        "tls_cert",
        "tls_key",
        "trusted_proxy",
        "cors_origin",
    },
    "mqtt": {
        "mqtt_prefix",
        "mqtt_client_id",
        "mqtt_group",
        "mqtt_qos",
        "mqtt_strict",
        "mqtt_max_payload",
        "mqtt_queue",
        "mqtt_stale",
        "mqtt_discovery",
        "mqtt_discovery_prefix",
        "mqtt_keepalive",
        "mqtt_ca",
    },
    "notify": {
        "webhook_allow_private",
        "webhook_allow",
        "webhook_timeout",
        "webhook_max_attempts",
        "webhook_max_age",
        "webhook_backoff",
        "webhook_backoff_max",
        "webhook_concurrency",
        "webhook_subscription_concurrency",
        "webhook_max_queue",
    },
}

_PROFILE_KEYS = {f.name for f in fields(Profile)} - {"name", "labels"}


def _parse_alerts(where: str, raw: Any) -> tuple[AlertRule, ...]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table of [alerts.NAME] tables")
    rules = []
    for name, body in raw.items():
        try:
            rules.append(parse_rule(name, body, source="config"))
        except InvalidInput as exc:
            raise ConfigError(f"{where[:-1]}.{name}]: {exc.message}") from None
    return tuple(rules)


def _env_name(key: str) -> str:
    return ENV_PREFIX + key.upper()


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: invalid TOML: {exc}") from exc
    return data


def _file_values(path: Path, data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    values: dict[str, Any] = {}
    profiles: dict[str, Any] = {}
    for section, body in data.items():
        if section == "alerts":
            values["alerts"] = (f"config file {path}: [alerts]", body)
            continue
        if section == "profiles":
            if not isinstance(body, dict):
                raise ConfigError(f"config file {path}: [profiles] must be a table")
            profiles = body
            continue
        allowed = _FILE_SECTIONS.get(section)
        if allowed is None:
            known = ", ".join(sorted([*_FILE_SECTIONS, "profiles", "alerts"]))
            raise ConfigError(f"config file {path}: unknown section [{section}] (known: {known})")
        if not isinstance(body, dict):
            raise ConfigError(f"config file {path}: [{section}] must be a table")
        for key, value in body.items():
            if key not in allowed:
                raise ConfigError(f"config file {path}: unknown key {section}.{key}")
            values[key] = (f"config {section}.{key}", value)
    return values, profiles


def _build_profiles(path: Path | None, raw: Mapping[str, Any], default: Profile) -> ProfileRegistry:
    profiles = [default]
    for name, body in raw.items():
        where = f"config file {path}: [profiles.{name}]"
        if name == DEFAULT_PROFILE:
            raise ConfigError(f"{where}: set the default profile in [presence] or with flags")
        if not isinstance(body, dict):
            raise ConfigError(f"{where} must be a table")
        unknown = set(body) - _PROFILE_KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]}")
        kwargs: dict[str, Any] = {}
        for key, value in body.items():
            if key in ("flap_threshold", "max_per_minute"):
                kwargs[key] = _parse_int(f"{where} {key}", value, minimum=0)
            else:
                kwargs[key] = _parse_float(f"{where} {key}", value, strict=False)
        try:
            profiles.append(Profile(name=name, **kwargs))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return ProfileRegistry(profiles)


def load_settings(
    flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build validated settings. ``flags`` holds only values given on the command line."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    environ = os.environ if environ is None else environ
    sources: dict[str, tuple[str, Any]] = {}

    config_raw = flags.get("config", environ.get(_env_name("config")))
    config_path = _parse_path("--config", config_raw) if config_raw else None
    raw_profiles: dict[str, Any] = {}
    if config_path is not None:
        file_values, raw_profiles = _file_values(config_path, _read_file(config_path))
        sources.update(file_values)
    for key in _PARSERS:
        env = environ.get(_env_name(key))
        if env not in (None, ""):
            sources[key] = (_env_name(key), env)
    for key, value in flags.items():
        if key not in _PARSERS:
            raise ConfigError(f"unknown setting {key!r}")
        sources[key] = ("--" + key.replace("_", "-"), value)

    values: dict[str, Any] = {}
    for key, (where, raw) in sources.items():
        values[key] = _parse_alerts(where, raw) if key == "alerts" else _PARSERS[key](where, raw)
    values["config"] = config_path

    stale = values.get("stale_after", 40.0)
    offline = values.get("offline_after", 300.0)
    if stale > offline:
        raise ConfigError(f"stale-after ({stale:g}) must not exceed offline-after ({offline:g})")
    default = Profile(
        stale_after=stale,
        offline_after=offline,
        min_interval=values.get("min_interval", 0.0),
        max_per_minute=values.get("max_per_minute", 0),
    )
    values["profiles"] = _build_profiles(config_path, raw_profiles, default)
    _check_security(values)
    return Settings(**values)


def _check_security(values: Mapping[str, Any]) -> None:
    if values.get("open") and values.get("admin_key"):
        raise ConfigError(
            "--open (LASTSEEN_OPEN) and LASTSEEN_ADMIN_KEY exclude each other: "
            "an open hub has no keys; unset one of them"
        )
    if values.get("workers", 1) > 1 and not values.get("redis"):
        raise ConfigError(
            f"--workers {values['workers']}: several workers share state only through "
            "Redis; give --redis too"
        )
    if bool(values.get("tls_cert")) != bool(values.get("tls_key")):
        raise ConfigError("--tls-cert and --tls-key go together: give both or neither")
