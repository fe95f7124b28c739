"""End-to-end: the ``lastseen`` client commands as subprocesses against a real hub.

The ``hub`` fixture (tests/conftest.py) runs ``lastseen serve`` with stale after
0.5 s and offline after 1 s. Every subprocess is bounded by a timeout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Sequence
from contextlib import aclosing
from typing import Any, Protocol

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream

from lastseen.client import HubClient

pytestmark = pytest.mark.e2e

CLI = (sys.executable, "-m", "lastseen")


class Hub(Protocol):
    url: str
    admin_key: str | None


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def cli_env(hub: Hub) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LASTSEEN_KEY", "NO_COLOR")}
    env["LASTSEEN_URL"] = hub.url
    env["PYTHONIOENCODING"] = "utf-8"  # the arrow in ``tail`` lines, whatever the locale
    if hub.admin_key:
        env["LASTSEEN_KEY"] = hub.admin_key
    return env


def lastseen(hub: Hub, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *argv], env=cli_env(hub), capture_output=True, text=True, timeout=timeout
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


class Lines:
    """The lines a running process writes to one of its pipes, read as they come."""

    def __init__(self, process: Process, stream: str = "stdout") -> None:
        pipe = process.stdout if stream == "stdout" else process.stderr
        assert pipe is not None
        self._text = TextReceiveStream(pipe)
        self._buffer = ""
        self.seen: list[str] = []

    async def until(self, predicate: Any) -> str:
        """Read until a line satisfies ``predicate``; return it."""
        while True:
            while "\n" in self._buffer:
                line, self._buffer = self._buffer.split("\n", 1)
                self.seen.append(line)
                if predicate(line):
                    return line
            self._buffer += await self._text.receive()

    async def rest(self) -> list[str]:
        async for text in self._text:
            self._buffer += text
        self.seen.extend(self._buffer.splitlines())
        self._buffer = ""
        return self.seen


async def start(hub: Hub, *argv: str) -> Process:
    return await anyio.open_process([*CLI, *argv], env=cli_env(hub))


def test_devices_add_list_show_remove(hub: Hub) -> None:
    a, b = unique("e2e-a"), unique("e2e-b")
    added = lastseen(hub, "devices", "add", a, "--label", "site=lab", "--label", "floor=2")
    assert added.returncode == 0, added.stderr
    assert a in added.stdout
    assert lastseen(hub, "devices", "add", b).returncode == 0

    table = lastseen(hub, "devices", "list")
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["ID", "STATUS", "SINCE", "LAST", "SEEN", "PROFILE", "LABELS"]
    row = next(r for r in rows if r.startswith(a))
    assert row.split()[1] == "unknown"
    assert "never" in row
    assert row.endswith("floor=2,site=lab")

    listed = lastseen(hub, "devices", "list", "--json")
    assert {a, b} <= {d["id"] for d in json_lines(listed.stdout)}
    by_label = lastseen(hub, "devices", "list", "--label", "site:lab", "--json")
    assert [d["id"] for d in json_lines(by_label.stdout)] == [a]
    none_online = lastseen(hub, "devices", "list", "--status", "online")
    assert (none_online.returncode, none_online.stdout) == (0, "")

    shown = lastseen(hub, "devices", "show", a, "--json")
    assert shown.returncode == 0, shown.stderr
    device = json.loads(shown.stdout)
    assert (device["id"], device["status"], device["labels"]) == (
        a,
        "unknown",
        {"site": "lab", "floor": "2"},
    )
    assert "status         unknown" in lastseen(hub, "devices", "show", a).stdout

    removed = lastseen(hub, "devices", "remove", a)
    assert (removed.returncode, removed.stdout) == (0, f"removed {a}\n")
    gone = lastseen(hub, "devices", "show", a)
    assert gone.returncode == 1
    assert gone.stderr.startswith("lastseen: not_found: ")
    assert lastseen(hub, "devices", "remove", a).returncode == 1


def test_the_key_comes_from_the_environment_or_the_flag(keyed_hub: Hub) -> None:
    assert keyed_hub.admin_key is not None
    device_id = unique("e2e-key")
    ok = lastseen(keyed_hub, "devices", "add", device_id)  # LASTSEEN_KEY from cli_env
    assert ok.returncode == 0, ok.stderr
    wrong = lastseen(keyed_hub, "devices", "show", device_id, "--key", "wrong")
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("lastseen: ")
    assert wrong.stderr.count("\n") == 1  # one line, no traceback


def test_a_refused_key_stops_tail_and_simulate(keyed_hub: Hub) -> None:
    tail = lastseen(keyed_hub, "tail", "--key", "wrong", timeout=15)
    assert tail.returncode == 1
    assert tail.stderr.startswith("lastseen: ")
    # No --duration: refused credentials alone end the run.
    simulate = lastseen(
        keyed_hub, "simulate", "--devices", "5", "--interval", "0.5", "--key", "wrong", timeout=15
    )
    assert simulate.returncode == 1
    assert simulate.stderr.splitlines()[0].startswith("simulate: 5 devices, 0 heartbeats sent")


def test_a_bad_url_is_a_usage_error(hub: Hub) -> None:
    bad = lastseen(hub, "devices", "list", "--url", "not a url")
    assert bad.returncode == 2
    assert bad.stderr.startswith("lastseen: usage: --url")


@pytest.mark.anyio
async def test_a_heartbeat_then_devices_show_says_online(hub: Hub) -> None:
    device_id = unique("e2e-hb")
    async with HubClient(hub.url, hub.admin_key) as client:
        await client.put_device(device_id)
        await client.heartbeat(device_id)

        async def keep_beating() -> None:
            # The hub's stale_after is 0.5 s, less than a Python start-up: keep it online.
            while True:
                await anyio.sleep(0.1)
                await client.heartbeat(device_id)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(keep_beating)
                shown = await anyio.run_process(
                    [*CLI, "devices", "show", device_id, "--json"], env=cli_env(hub), check=False
                )
                listed = await anyio.run_process(
                    [*CLI, "devices", "list", "--status", "online", "--json"],
                    env=cli_env(hub),
                    check=False,
                )
                tasks.cancel_scope.cancel()
    assert shown.returncode == 0, shown.stderr
    device = json.loads(shown.stdout)
    assert device["status"] == "online"
    assert device["last_seen"] is not None
    assert device_id in {d["id"] for d in json_lines(listed.stdout.decode())}


@pytest.mark.anyio
async def test_tail_prints_transitions_and_ctrl_c_exits_0(hub: Hub) -> None:
    device_id = unique("e2e-tail")
    async with HubClient(hub.url, hub.admin_key) as client:
        await client.put_device(device_id)
        await client.heartbeat(device_id)
        with anyio.fail_after(30):
            async with await start(
                hub, "tail", "--after", "0", "--device", device_id, "--no-color"
            ) as process:
                out = Lines(process)
                first = await out.until(lambda line: device_id in line)
                assert "unknown → online" in first
                assert "heartbeat" in first
                # Live, not replayed: the hub's own timeouts, then another heartbeat.
                await out.until(lambda line: "stale → offline" in line)
                await client.heartbeat(device_id)
                await out.until(lambda line: "offline → online" in line)
                process.send_signal(signal.SIGINT)
                assert await process.wait() == 0
                assert process.stderr is not None
                err = Lines(process, "stderr")
                stderr = await err.rest()
    seqs = [int(line.split()[1]) for line in out.seen]
    assert seqs == sorted(seqs)
    assert f"lastseen: last seq {seqs[-1]}; resume with: lastseen tail --after {seqs[-1]}" in (
        stderr
    )


@pytest.mark.anyio
async def test_tail_json_resumes_after_the_given_seq(hub: Hub) -> None:
    device_id = unique("e2e-json")
    async with HubClient(hub.url, hub.admin_key) as client:
        await client.put_device(device_id)
        await client.heartbeat(device_id)
        with anyio.fail_after(30):
            async with aclosing(client.stream(after=0, devices=[device_id])) as events:
                async for event in events:
                    if event.event == "transition":
                        first_seq = event.transition().seq
                        break
            async with await start(
                hub, "tail", "--after", str(first_seq), "--device", device_id, "--json"
            ) as process:
                out = Lines(process)
                line = await out.until(lambda line: '"offline"' in line)
                process.send_signal(signal.SIGINT)
                assert await process.wait() == 0
    events = json_lines("\n".join(out.seen))
    assert all(e["seq"] > first_seq for e in events)
    assert [(e["from"], e["to"]) for e in events] == [("online", "stale"), ("stale", "offline")]
    assert json.loads(line)["device_id"] == device_id


@pytest.mark.anyio
async def test_tail_resumes_across_a_hub_restart(hub: Hub) -> None:
    restart = getattr(hub, "restart", None)
    if restart is None:
        pytest.skip("this hub fixture cannot restart")
    device_id = unique("e2e-resume")
    async with HubClient(hub.url, hub.admin_key) as client:
        await client.put_device(device_id)
        await client.heartbeat(device_id)
        with anyio.fail_after(60):
            async with await start(
                hub, "tail", "--after", "0", "--device", device_id, "--json"
            ) as process:
                out = Lines(process)
                await out.until(lambda line: '"offline"' in line)
                await anyio.to_thread.run_sync(restart)
                await client.heartbeat(device_id)
                await out.until(lambda line: '"to":"online"' in line and '"from":"offline"' in line)
                process.send_signal(signal.SIGINT)
                assert await process.wait() == 0
                stderr = await Lines(process, "stderr").rest()
    seqs = [e["seq"] for e in json_lines("\n".join(out.seen))]
    # Nothing missed, nothing repeated: only this device changed on this fresh hub.
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert any("retrying in" in line for line in stderr)


async def _wait_all_online(client: HubClient, prefix: str, count: int) -> None:
    while True:
        async with aclosing(client.list_devices(status="online", limit=1000)) as devices:
            online = [d.id async for d in devices if d.id.startswith(prefix)]
        if len(online) == count:
            return
        await anyio.sleep(0.1)


async def _simulate(hub: Hub, extra: Sequence[str]) -> None:
    prefix = unique("sim") + "-"
    argv = ["simulate", "--devices", "20", "--interval", "0.2", "--duration", "2"]
    async with HubClient(hub.url, hub.admin_key) as client:
        with anyio.fail_after(30):
            async with await start(hub, *argv, "--prefix", prefix, *extra) as process:
                # Checked while it runs: with stale_after 0.5 s they fade soon after it stops.
                await _wait_all_online(client, prefix, 20)
                assert await process.wait() == 0
                stderr = await Lines(process, "stderr").rest()
    summary = stderr[-1]
    assert summary.startswith("simulate: 20 devices, ")
    assert " 0 errors" in summary


@pytest.mark.anyio
async def test_simulate_makes_a_fleet_online_and_exits_0(hub: Hub) -> None:
    await _simulate(hub, [])


@pytest.mark.anyio
async def test_simulate_in_batches(hub: Hub) -> None:
    await _simulate(hub, ["--batch"])
