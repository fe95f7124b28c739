"""``lastseen keys create|list|revoke|token``: API keys and device tokens.

Through a running hub's API with an admin key (``--url``, ``--key`` or
``LASTSEEN_URL``, ``LASTSEEN_KEY``), or directly on the hub's data directory with
``--data-dir DIR`` (or on its database with ``--postgres URL``): that works while
the hub is stopped, and is how an operator who lost every admin key makes a new one
(whoever can write the data directory or the database owns the hub anyway). A
running hub notices keys changed in its store within ``key_refresh`` seconds
(default 5). A secret is printed once, on stdout, alone on its line, so
``KEY=$(lastseen keys create ...)`` captures it; the hub keeps only its digest.
"""

from __future__ import annotations

import argparse
import getpass
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import httpx
import orjson

from lastseen import __version__
from lastseen.cli._common import EXIT_OK, UsageError, device_id_arg, hub_options, hub_target, plain
from lastseen.cli._common import run as run_command
from lastseen.cli.devices import render_table
from lastseen.client.errors import HubError, from_response, from_transport_error
from lastseen.clock import SystemClock
from lastseen.errors import ConfigError, LastseenError
from lastseen.security.audit import Auditor
from lastseen.security.keyring import KeyRing, parse_role
from lastseen.security.permissions import KEY_ROLES
from lastseen.settings import parse_postgres_url
from lastseen.store import KeyRecord, SQLiteStore, Store

_COLUMNS = ("ID", "ROLE", "NAME", "DEVICE", "CREATED", "REVOKED")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "keys", help="create, list and revoke API keys", description=plain(__doc__)
    )
    commands = parser.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    where = argparse.ArgumentParser(add_help=False, parents=[hub_options()])
    where.add_argument(
        "--data-dir",
        type=Path,
        help="work on this data directory's store instead of through a hub's API",
    )
    where.add_argument(
        "--postgres",
        metavar="URL",
        help="work on this PostgreSQL store (postgresql://...) instead of through a hub's API",
    )

    create = commands.add_parser("create", parents=[where], help="create a key (shown once)")
    create.add_argument("--role", required=True, choices=[r.value for r in KEY_ROLES])
    create.add_argument("--name", required=True, help="what the key is for, e.g. dashboard")
    create.add_argument(
        "--max-per-minute", type=int, default=0, help="requests per minute (0: the default)"
    )
    create.set_defaults(func=_create)

    list_ = commands.add_parser("list", parents=[where], help="list keys (never their secrets)")
    list_.add_argument("--all", action="store_true", help="include revoked keys")
    list_.add_argument("--json", action="store_true", help="one JSON object per line")
    list_.set_defaults(func=_list)

    revoke = commands.add_parser(
        "revoke", parents=[where], help="revoke a key: refused at once, its streams closed"
    )
    revoke.add_argument("id", metavar="KEY_ID")
    revoke.set_defaults(func=_revoke)

    token = commands.add_parser(
        "token",
        parents=[hub_options()],
        help="issue a device's token (replacing its previous one) through the hub",
    )
    token.add_argument("device", type=device_id_arg, metavar="DEVICE_ID")
    token.set_defaults(func=_token)


# -- two ways to reach the keys -------------------------------------------------


class _Api:
    """The hub's ``/v1/keys`` routes."""

    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http = http
        self.url = url

    async def call(self, method: str, path: str, body: object = None) -> Any:
        content = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else {}
        try:
            answer = await self.http.request(method, path, content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise from_transport_error(exc, self.url) from exc
        if answer.status_code >= 400:
            raise from_response(answer.status_code, answer.content, answer.reason_phrase)
        return orjson.loads(answer.content) if answer.content else None

    async def create(self, role: str, name: str, rate: int) -> tuple[dict[str, Any], str]:
        body = {"role": role, "name": name, "max_per_minute": rate}
        answer = await self.call("POST", "/v1/keys", body)
        return answer, answer["secret"]

    async def list(self) -> list[dict[str, Any]]:
        answer = await self.call("GET", "/v1/keys")
        keys: list[dict[str, Any]] = answer["keys"]
        return keys

    async def revoke(self, key_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = await self.call("DELETE", f"/v1/keys/{key_id}")
        return answer


class _Local:
    """The store in a data directory, as the hub itself would change it."""

    def __init__(self, ring: KeyRing, auditor: Auditor) -> None:
        self.ring = ring
        self.auditor = auditor
        self.actor = "cli"
        self.source = f"cli:{getpass.getuser()}@{socket.gethostname()}"

    async def create(self, role: str, name: str, rate: int) -> tuple[dict[str, Any], str]:
        created = await self.ring.create(
            parse_role(role), name, created_by=self.actor, max_per_minute=rate
        )
        assert created is not None
        record, secret = created
        await self.auditor.record(
            self.actor, "key.created", record.id, self.source, {"role": role, "name": name}
        )
        return _local_json(record), secret

    async def list(self) -> list[dict[str, Any]]:
        return [_local_json(record) for record in self.ring.listing()]

    async def revoke(self, key_id: str) -> dict[str, Any]:
        record = await self.ring.revoke(key_id)
        await self.auditor.record(
            self.actor, "key.revoked", key_id, self.source, {"role": record.role}
        )
        return _local_json(record)


def _stamp(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _local_json(record: KeyRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "role": record.role,
        "name": record.name,
        "device_id": record.device_id,
        "max_per_minute": record.max_per_minute,
        "created_at": _stamp(record.created_at) if record.created_at else None,
        "created_by": record.created_by,
        "revoked_at": _stamp(record.revoked_at),
        "active": record.active,
    }


@asynccontextmanager
async def _keys(args: argparse.Namespace) -> AsyncIterator[_Api | _Local]:
    if args.data_dir is not None or args.postgres is not None:
        store, where = _local_store(args)
        try:
            await store.open()
        except Exception as exc:
            raise UsageError(f"{where}: {exc}") from exc
        try:
            clock = SystemClock()
            ring = KeyRing(store, clock)
            await ring.load()
            yield _Local(ring, Auditor(store, clock))
        except (HubError, UsageError):
            raise
        except LastseenError as exc:
            # Refused by the store or the key rules: reported like a hub's refusal.
            raise HubError(None, exc.code, exc.message) from exc
        finally:
            await store.close()
        return
    target = hub_target(args)
    headers = {"User-Agent": f"lastseen-cli/{__version__}", "Accept": "application/json"}
    if target.key:
        headers["Authorization"] = f"Bearer {target.key}"
    async with httpx.AsyncClient(base_url=target.url, headers=headers, timeout=10) as http:
        yield _Api(http, target.url)


def _local_store(args: argparse.Namespace) -> tuple[Store, str]:
    """The store named by ``--data-dir`` or ``--postgres``, and how to name it."""
    if args.url or args.key:
        raise UsageError(
            "--data-dir and --postgres work on the store directly: drop --url and --key"
        )
    if args.postgres is not None:
        if args.data_dir is not None:
            raise UsageError("give --data-dir or --postgres, not both")
        from lastseen.store.postgres import PostgresStore

        try:
            dsn = parse_postgres_url("--postgres", args.postgres)
        except ConfigError as exc:
            raise UsageError(exc.message) from exc
        store = PostgresStore(dsn, max_size=1)
        return store, f"--postgres {store.where}"
    path = args.data_dir / "lastseen.db"
    if not path.exists():
        raise UsageError(f"--data-dir {args.data_dir}: no lastseen store there ({path})")
    return SQLiteStore(path), f"--data-dir {args.data_dir}"


# -- commands -------------------------------------------------------------------


def key_rows(keys: Sequence[dict[str, Any]]) -> list[tuple[str, ...]]:
    return [
        (
            key["id"],
            key["role"],
            key["name"],
            key.get("device_id") or "-",
            (key.get("created_at") or "-")[:19].replace("T", " "),
            (key.get("revoked_at") or "-")[:19].replace("T", " "),
        )
        for key in keys
    ]


def _create(args: argparse.Namespace) -> int:
    return run_command(_create_async(args, sys.stdout, sys.stderr))


async def _create_async(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.max_per_minute < 0:
        raise UsageError("--max-per-minute must be >= 0")
    async with _keys(args) as keys:
        key, secret = await keys.create(args.role, args.name, args.max_per_minute)
    print(secret, file=out)
    print(
        f"created {key['role']} key {key['id']} ({key['name']}); the secret above is shown "
        "only now: store it safely",
        file=err,
    )
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    return run_command(_list_async(args, sys.stdout))


async def _list_async(args: argparse.Namespace, out: TextIO) -> int:
    async with _keys(args) as keys:
        found = await keys.list()
    shown = [k for k in found if args.all or k.get("active", True)]
    if args.json:
        for key in shown:
            print(orjson.dumps(key).decode(), file=out)
    elif shown:
        for line in render_table(_COLUMNS, key_rows(shown)):
            print(line, file=out)
    else:
        print("no keys", file=sys.stderr)
    return EXIT_OK


def _revoke(args: argparse.Namespace) -> int:
    return run_command(_revoke_async(args, sys.stdout))


async def _revoke_async(args: argparse.Namespace, out: TextIO) -> int:
    async with _keys(args) as keys:
        key = await keys.revoke(args.id)
    print(f"revoked {key['role']} key {key['id']} ({key['name']})", file=out)
    return EXIT_OK


def _token(args: argparse.Namespace) -> int:
    return run_command(_token_async(args, sys.stdout, sys.stderr))


async def _token_async(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    target = hub_target(args)
    headers = {"Authorization": f"Bearer {target.key}"} if target.key else {}
    async with httpx.AsyncClient(base_url=target.url, headers=headers, timeout=10) as http:
        answer = await _Api(http, target.url).call("POST", f"/v1/devices/{args.device}/token")
    print(answer["secret"], file=out)
    revoked = ", ".join(answer.get("revoked") or []) or "none"
    print(
        f"issued token {answer['token']['id']} for device {args.device} (replaced: {revoked}); "
        "the secret above is shown only now",
        file=err,
    )
    return EXIT_OK
