"""``lastseen serve``: run the hub."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import uvicorn

from lastseen.errors import ConfigError, StoreError
from lastseen.settings import Settings, load_settings
from lastseen.store import KeyRecord, Store

log = logging.getLogger("lastseen.serve")

#: Flags of ``serve``; each also reads ``LASTSEEN_<NAME>`` (see settings.py).
_FLAGS: list[tuple[str, dict[str, Any]]] = [
    ("--host", {"help": "address to listen on (default 127.0.0.1)"}),
    ("--port", {"help": "port to listen on (default 8080)"}),
    ("--data-dir", {"help": "where the SQLite database lives (default ./data)"}),
    ("--stale-after", {"help": "seconds without a sign of life before stale (default 40)"}),
    ("--offline-after", {"help": "seconds without a sign of life before offline (default 300)"}),
    ("--config", {"help": "a TOML config file (profiles live there)"}),
    ("--redis", {"help": "Redis URL (scale-out mode)"}),
    (
        "--postgres",
        {
            "help": "PostgreSQL URL (postgresql://user@host:5432/db): the durable store; "
            "without --redis it replaces the SQLite file in --data-dir"
        },
    ),
    ("--redis-prefix", {"help": "hash tag of this hub's Redis keys (default ls)"}),
    (
        "--redis-cluster",
        {
            "action": "store_const",
            "const": True,
            "help": "--redis is a Redis Cluster node (same as a redis+cluster:// URL)",
        },
    ),
    ("--workers", {"help": "processes serving this port on this host (needs --redis)"}),
    ("--mqtt", {"help": "MQTT broker, mqtt://[user:pass@]host[:port] or mqtts://..."}),
    ("--mqtt-prefix", {"help": "topic prefix of device topics (default lastseen/)"}),
    ("--mqtt-client-id", {"help": "MQTT client id (default lastseen-<random>)"}),
    ("--mqtt-group", {"help": "shared-subscription group of the instances (default lastseen)"}),
    ("--mqtt-qos", {"help": "QoS of subscriptions and retained publishes (default 1)"}),
    (
        "--mqtt-strict",
        {
            "action": "store_const",
            "const": True,
            "help": "drop messages of unregistered device ids instead of registering them",
        },
    ),
    ("--mqtt-max-payload", {"help": "largest inbound payload in bytes (default 65536)"}),
    ("--mqtt-queue", {"help": "inbound messages queued before dropping (default 100000)"}),
    ("--mqtt-stale", {"help": "availability of stale devices: online or offline (default online)"}),
    (
        "--mqtt-discovery",
        {
            "action": "store_const",
            "const": True,
            "help": "publish Home Assistant discovery configs (connectivity binary sensors)",
        },
    ),
    ("--mqtt-discovery-prefix", {"help": "discovery prefix (default homeassistant)"}),
    ("--mqtt-keepalive", {"help": "seconds between MQTT keep-alives (default 30)"}),
    ("--mqtt-ca", {"help": "CA bundle (PEM) to verify an mqtts:// broker"}),
    ("--flush-interval", {"help": "seconds between last_seen write-behind flushes (default 1)"}),
    ("--log-level", {"help": "debug, info, warning or error (default info)"}),
    ("--log-format", {"help": "text or json (default text)"}),
    (
        "--open",
        {
            "action": "store_const",
            "const": True,
            "help": "no authentication at all, for a local trial (env LASTSEEN_OPEN=1)",
        },
    ),
    (
        "--webhook-allow-private",
        {
            "action": "store_const",
            "const": True,
            "help": "let webhooks reach loopback and private addresses (default: refused; "
            "see docs/notifications.md)",
        },
    ),
    ("--tls-cert", {"help": "serve HTTPS/WSS with this PEM certificate chain"}),
    ("--tls-key", {"help": "the PEM private key of --tls-cert"}),
    (
        "--trusted-proxy",
        {
            "action": "append",
            "help": "an address or network (repeatable, or comma-separated) whose "
            "X-Forwarded-For/-Proto headers are believed; default: none",
        },
    ),
    (
        "--cors-origin",
        {
            "action": "append",
            "help": "a browser origin allowed to call the API, e.g. https://dash.example.com "
            "(repeatable); default: none",
        },
    ),
]

#: Largest WebSocket message accepted from a client (subscriptions are small).
WS_MAX_SIZE = 64 * 1024


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the hub",
        description="Run the presence hub. Every flag also reads LASTSEEN_<FLAG>, "
        "e.g. LASTSEEN_PORT; the admin key comes from LASTSEEN_ADMIN_KEY. Without it, "
        "the first start creates an admin key and prints it once; see "
        "'lastseen keys --help' and docs/security.md.",
    )
    for flag, options in _FLAGS:
        parser.add_argument(flag, **options)
    parser.set_defaults(func=run)


class _Server(uvicorn.Server):
    """Closes live streams first on SIGTERM/SIGINT, so shutdown never waits on them;
    sets ``listening`` once it accepts connections."""

    def __init__(
        self, config: uvicorn.Config, on_exit: Any, listening: asyncio.Event | None = None
    ) -> None:
        super().__init__(config)
        self._on_exit = on_exit
        self._listening = listening

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # Set only once the sockets accept connections (the ASGI lifespan's startup
        # ends before uvicorn binds them).
        if self.started and self._listening is not None:
            self._listening.set()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_exit()
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn's own version re-raises the signal after shutdown, which would end
        # the process with -SIGTERM instead of the clean exit 0 we promise.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


def _prepare_data_dir(settings: Settings) -> Path:
    path = settings.data_dir
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--data-dir {path}: cannot create: {exc.strerror}") from exc
    if not path.is_dir():
        raise ConfigError(f"--data-dir {path}: not a directory")
    if not os.access(path, os.W_OK):
        raise ConfigError(f"--data-dir {path}: not writable")
    return path


def print_bootstrap_key(record: KeyRecord, secret: str, stream: TextIO | None = None) -> None:
    """Show the first admin key, once: on stderr, not in the structured log."""
    out = stream or sys.stderr
    print(
        "\n"
        "lastseen: created the first admin key (it is shown only this once; keep it safe):\n"
        f"\n    {secret}\n\n"
        "  Send it as 'Authorization: Bearer <key>'. Create more keys with it, e.g.\n"
        "    LASTSEEN_KEY=<key> lastseen keys create --role read --name dashboard\n"
        "  or, on this machine, without the hub's API:\n"
        "    lastseen keys create --data-dir <data dir> --role ingest --name gateways\n"
        "  (with --postgres: lastseen keys create --postgres <URL> ...)\n",
        file=out,
        flush=True,
    )


async def _serve(settings: Settings, *, reuse_port: bool = False) -> None:
    store = _store(settings)
    # Opened here, before the server, so an unreachable or too new store is one clear
    # line and exit 1 (the hub's own open() in the lifespan is then a no-op).
    await store.open()
    try:
        await _run_server(settings, store, reuse_port=reuse_port)
    finally:
        await store.close()


async def _run_server(settings: Settings, store: Store, *, reuse_port: bool) -> None:
    # Imported here so that `lastseen --help` stays fast.
    from lastseen.http.app import create_app
    from lastseen.hub.api import HubAPI
    from lastseen.hub.core import Hub
    from lastseen.security.service import Security

    hub: HubAPI
    security: Security | None = None
    listening = asyncio.Event()
    if settings.redis:
        from lastseen.scaleout.serve import build

        hub, security = build(settings, store, print_bootstrap_key)
    else:
        # A restart's overdue deadlines wait until the server listens (see Hub).
        hub = Hub(settings, store, serving=listening)
    services = []
    if settings.mqtt:
        from lastseen.mqtt.bridge import MqttBridge

        services.append(MqttBridge(hub, settings, hub.metrics.registry))
    app = create_app(hub, on_bootstrap=print_bootstrap_key, security=security, services=services)
    tls = settings.tls_cert is not None
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="none",
        http="httptools",
        ws="websockets-sansio",
        # Compressing every small event for every subscriber cost more CPU than the
        # whole heartbeat path (profiled); events are ~200 bytes.
        ws_per_message_deflate=False,
        lifespan="on",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=5,
        ws_ping_interval=20,
        ws_ping_timeout=20,
        ws_max_size=WS_MAX_SIZE,
        # X-Forwarded-* are handled by the app, and only from --trusted-proxy
        # (uvicorn's own default would trust them from 127.0.0.1).
        proxy_headers=False,
        server_header=False,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
    )
    server = _Server(config, hub.broadcaster.close_all, listening)
    log.info(
        "event=starting url=%s://%s:%d store=%s auth=%s stale_after=%g offline_after=%g",
        "https" if tls else "http",
        settings.host,
        settings.port,
        _store_name(store),
        "open" if settings.open else "keys",
        settings.default_profile.stale_after,
        settings.default_profile.offline_after,
    )
    await server.serve(sockets=[_shared_socket(settings)] if reuse_port else None)
    if server.started is False and not server.should_exit:
        raise SystemExit(1)


def _store(settings: Settings) -> Store:
    """PostgreSQL with ``--postgres``, else the SQLite file under ``--data-dir``; shared
    (not exclusive) with ``--redis``, where Redis assigns the seqs."""
    if settings.redis:
        from lastseen.scaleout.serve import durable_store

        return durable_store(settings, _prepare_data_dir(settings))
    if settings.postgres:
        from lastseen.store.postgres import PostgresStore

        # Exclusive: without Redis this process alone assigns seqs for the database.
        return PostgresStore(settings.postgres, exclusive=True)
    from lastseen.store.sqlite import SQLiteStore

    return SQLiteStore(_prepare_data_dir(settings) / "lastseen.db")


def _store_name(store: Store) -> str:
    where = getattr(store, "where", None) or getattr(store, "path", None)
    return str(where) if where is not None else type(store).__name__


def _shared_socket(settings: Settings) -> socket.socket:
    """A listening socket several worker processes bind at once (SO_REUSEPORT): the
    kernel spreads connections over them."""
    family, kind, proto, _, address = socket.getaddrinfo(
        settings.host, settings.port, type=socket.SOCK_STREAM
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.listen(2048)
    sock.set_inheritable(False)
    return sock


def _run_workers(settings: Settings, loop_factory: Any) -> int:
    """``--workers N``: N forked processes, each a full shared-hub instance on the same
    port, a dead one replaced (``scaleout/workers.py``)."""
    from lastseen.scaleout.workers import supervise

    def work() -> int:  # pragma: no cover - runs in a worker
        try:
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                runner.run(_serve(settings, reuse_port=True))
        except ConfigError as exc:
            print(f"lastseen: {exc.message}", file=sys.stderr)
            return 2
        except BaseException:
            return 1
        return 0

    return supervise(work, settings.workers)


def _check_tls(settings: Settings) -> None:
    """Load the certificate and key once now, so a bad pair is one clear line, not a
    traceback from deep inside the server."""
    if settings.tls_cert is None or settings.tls_key is None:
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"--tls-cert {settings.tls_cert} / --tls-key {settings.tls_key}: "
            f"cannot load the pair: {exc}"
        ) from exc


def run(args: argparse.Namespace) -> int:
    from lastseen import logs

    flags = {
        name.lstrip("-").replace("-", "_"): getattr(args, name.lstrip("-").replace("-", "_"))
        for name, _ in _FLAGS
    }
    try:
        settings = load_settings(flags)
        _check_tls(settings)
    except ConfigError as exc:
        print(f"lastseen: {exc.message}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    try:
        import uvloop

        loop_factory: Any = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is absent on Windows
        loop_factory = None
    if settings.workers > 1:
        return _run_workers(settings, loop_factory)
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(_serve(settings))
    except ConfigError as exc:
        print(f"lastseen: {exc.message}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"lastseen: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # pragma: no cover - a second Ctrl-C during shutdown
        return 130
    return 0
