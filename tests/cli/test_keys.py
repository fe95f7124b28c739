"""``lastseen keys`` on a data directory (no hub running); the API path is in
tests/security/test_hub_e2e.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from lastseen.cli import build_parser
from lastseen.store import SQLiteStore


def lastseen(*argv: str) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    async def make() -> None:
        store = SQLiteStore(tmp_path / "lastseen.db")
        await store.open()
        await store.close()

    asyncio.run(make())
    return tmp_path


def test_create_prints_only_the_secret_on_stdout(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = lastseen(
        "keys", "create", "--data-dir", str(data_dir), "--role", "admin", "--name", "ops"
    )
    out, err = capsys.readouterr()
    assert code == 0
    assert out.startswith("lsk_")
    assert len(out.strip().splitlines()) == 1
    assert "shown only now" in err


def test_list_and_revoke(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    where = ("--data-dir", str(data_dir))
    lastseen("keys", "create", *where, "--role", "admin", "--name", "ops")
    lastseen("keys", "create", *where, "--role", "read", "--name", "wall display")
    capsys.readouterr()
    assert lastseen("keys", "list", *where, "--json") == 0
    keys = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(k["role"], k["name"]) for k in keys] == [("admin", "ops"), ("read", "wall display")]
    read_id = keys[1]["id"]
    assert lastseen("keys", "revoke", *where, read_id) == 0
    assert f"revoked read key {read_id}" in capsys.readouterr().out
    lastseen("keys", "list", *where)
    table = capsys.readouterr().out
    assert read_id not in table
    assert table.splitlines()[0].split() == ["ID", "ROLE", "NAME", "DEVICE", "CREATED", "REVOKED"]
    lastseen("keys", "list", *where, "--all")
    assert read_id in capsys.readouterr().out


def test_refusals_are_one_line_and_exit_1(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ("--data-dir", str(data_dir))
    lastseen("keys", "create", *where, "--role", "admin", "--name", "only")
    admin_id = json.loads(
        (capsys.readouterr(), lastseen("keys", "list", *where, "--json"), capsys.readouterr())[
            2
        ].out
    )["id"]
    assert lastseen("keys", "revoke", *where, admin_id) == 1
    assert capsys.readouterr().err.startswith("lastseen: last_admin_key: ")
    assert lastseen("keys", "revoke", *where, "000000000000") == 1
    assert "not_found" in capsys.readouterr().err


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = ("--data-dir", str(tmp_path / "nothing"))
    assert lastseen("keys", "list", *missing) == 2
    assert "no lastseen store" in capsys.readouterr().err
    assert lastseen("keys", "list", *missing, "--url", "http://x") == 2
    with pytest.raises(SystemExit):
        lastseen("keys", "create", "--role", "root", "--name", "x")
