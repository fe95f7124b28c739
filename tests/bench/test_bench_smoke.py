"""Smoke tests: every benchmark still runs end to end, at a tiny size.

Each runs ``python -m bench.NAME`` as a subprocess against real hub processes and
checks that it exits 0 and writes its JSON result with the expected keys. Timing
numbers are never asserted: on a shared CI machine they mean nothing. The bench
package is copied to a temporary directory first, so a smoke run never overwrites
the results of a real run in ``bench/results/``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bench.run_all import tables

pytestmark = pytest.mark.e2e

BENCH = Path(__file__).resolve().parents[2] / "bench"
#: Hard bound per benchmark run; each takes a few seconds on an idle 2-core machine.
BOUND = 20.0
ENVIRONMENT_KEYS = {"cores", "python", "platform", "packages", "commit", "when"}


def run_bench(tmp_path: Path, name: str, *args: str, bound: float = BOUND) -> dict[str, Any]:
    """Run one benchmark in a copy of ``bench/``; its parsed JSON result."""
    shutil.copytree(
        BENCH, tmp_path / "bench", ignore=shutil.ignore_patterns("results", "__pycache__")
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", f"bench.{name}", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Its own process group, so a hung run is killed with the hubs it started.
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=bound)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"bench.{name} did not finish within {bound} s:\n{output}")
    assert proc.returncode == 0, output
    assert tables(output), f"bench.{name} printed no summary table:\n{output}"
    result: dict[str, Any] = json.loads(
        (tmp_path / "bench" / "results" / f"{name}.json").read_text()
    )
    assert result["benchmark"] == name
    assert result["environment"].keys() >= ENVIRONMENT_KEYS
    assert len(result["runs"]) == 1
    return result


@pytest.mark.timeout(30)
def test_heartbeat_throughput(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("wrk is not on PATH; CI must install it (Debian package wrk)")
        pytest.skip("wrk is not on PATH (Debian package wrk); CI runs this")
    result = run_bench(
        tmp_path, "heartbeat_throughput", "--devices", "1000", "--runs", "1", "--seconds", "1"
    )
    assert {"heartbeat_rps", "ceiling_rps", "ratio", "batched_hps"} <= result["summary"][
        "1000"
    ].keys()


@pytest.mark.timeout(30)
def test_timeout_lag(tmp_path: Path) -> None:
    result = run_bench(
        tmp_path, "timeout_lag", "--devices", "1000", "--runs", "1", "--scenario", "burst"
    )
    burst = result["summary"]["burst"]
    assert {"lag_p50_ms", "lag_p99_ms", "lag_max_ms", "all_received"} <= burst.keys()
    assert burst["all_received"] is True


@pytest.mark.timeout(30)
def test_push_latency(tmp_path: Path) -> None:
    result = run_bench(
        tmp_path, "push_latency", "--subscribers", "3", "--samples", "10", "--warmup", "2",
        "--runs", "1",
    )  # fmt: skip
    summary = result["summary"]
    for transport in ("sse", "ws"):
        assert {"p50_ms", "p99_ms", "max_ms", "spread_p50_ms", "missing"} <= summary[
            transport
        ].keys()
        assert summary[transport]["missing"] == 0
        assert result["runs"][0][transport]["deliveries"] == 3 * 10
    assert {"ack_p50_ms", "ack_p99_ms", "hub_cpu_percent"} <= summary.keys()


@pytest.mark.timeout(30)
def test_memory(tmp_path: Path) -> None:
    result = run_bench(tmp_path, "memory", "--devices", "2000", "--runs", "1", "--settle", "0.5")
    assert {
        "bytes_per_device",
        "marginal_bytes_per_device",
        "rss_base_bytes",
        "rss_final_bytes",
        "register_seconds",
        "register_per_second",
    } <= result["summary"].keys()
    assert result["runs"][0]["devices"] == 2000


@pytest.mark.timeout(30)
def test_burst(tmp_path: Path) -> None:
    result = run_bench(tmp_path, "burst", "--devices", "2000", "--runs", "1")
    assert {"sweep_seconds", "delivered_seconds", "all_received"} <= result["summary"].keys()
    assert result["summary"]["all_received"] is True
    assert result["runs"][0]["received"] == 2000


def test_store_floor(tmp_path: Path) -> None:
    result = run_bench(
        tmp_path, "store_floor", "--devices", "2000", "--chunk", "500", "--runs", "1"
    )
    assert {"presence_seconds", "events_seconds", "both_seconds"} <= result["summary"].keys()
    assert result["runs"][0]["last_seq"] == 4000  # the events and the burst's events
    assert result["runs"][0]["online"] == 2000  # the burst's presence rows


@pytest.mark.timeout(30)
def test_restart(tmp_path: Path) -> None:
    result = run_bench(
        tmp_path, "restart", "--devices", "1000", "--runs", "1",
        "--stale-after", "0.5", "--offline-after", "1", "--timeout", "30",
    )  # fmt: skip
    assert {"serve_seconds", "recovered_seconds", "rss_after_bytes", "devices"} <= result[
        "summary"
    ].keys()
    run = result["runs"][0]
    assert run["transitions"] == 2 * 1000


@pytest.mark.timeout(30)
def test_restart_with_an_alert_rule(tmp_path: Path) -> None:
    result = run_bench(
        tmp_path, "restart", "--devices", "1000", "--runs", "1", "--alert-rule", "3600",
        "--stale-after", "0.5", "--offline-after", "1", "--timeout", "30",
    )  # fmt: skip
    assert result["summary"]["alert_rule_seconds"] == 3600.0
    assert result["runs"][0]["transitions"] == 2 * 1000


@pytest.mark.timeout(60)
def test_restart_on_a_setup_written_with_the_store_and_reused(tmp_path: Path) -> None:
    data = tmp_path / "setup"
    args = ("--devices", "1000", "--runs", "1", "--stale-after", "0.5", "--offline-after", "1")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = run_bench(tmp_path / "a", "restart", *args, "--build", "--data", str(data))
    assert "build_seconds" in first["summary"]
    again = run_bench(tmp_path / "b", "restart", *args, "--data", str(data))
    assert again["summary"]["reused"] is True
    for result in (first, again):
        run = result["runs"][0]
        assert run["transitions"] == 2 * 1000
        assert run["first_seconds"] <= run["recovered_seconds"]
        assert run["healthz_p50_ms"] > 0


@pytest.mark.timeout(60)
def test_restart_load(tmp_path: Path) -> None:
    data = tmp_path / "setup"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    args = ("--devices", "500", "--runs", "1", "--stale-after", "0.5", "--offline-after", "1")
    run_bench(tmp_path / "a", "restart", *args, "--build", "--data", str(data))
    result = run_bench(tmp_path / "b", "restart_load", str(data), "--runs", "1")
    assert result["runs"][0]["devices"] == 500
    assert result["summary"]["start_cpu_seconds"] > 0


@pytest.mark.timeout(30)
def test_postgres_store(tmp_path: Path, postgres_dsn: str) -> None:
    result = run_bench(
        tmp_path, "postgres_store", "--devices", "500", "--runs", "1", "--dsn", postgres_dsn
    )
    summary = result["summary"]["500"]
    assert summary.keys() == {"postgres", "sqlite"}
    assert {"commit_s", "commit_tps", "commit_idem_s", "replay_s", "page_ms", "walk_s"} <= (
        summary["postgres"].keys()
    )


def test_tables_finds_every_summary_table() -> None:
    output = "\n".join(
        [
            "{'a': 1}",
            "",
            "first title",
            "-----------",
            "row one  1",
            "row two  2",
            "",
            "wrote x.json",
            "second",
            "------",
            "only row  3",
        ]
    )
    assert tables(output).split("\n") == [
        "first title",
        "-----------",
        "row one  1",
        "row two  2",
        "",
        "second",
        "------",
        "only row  3",
        "",
    ]


def test_inprocess(tmp_path: Path) -> None:
    result = run_bench(
        tmp_path, "inprocess", "--devices", "1000", "--requests", "1000", "--runs", "1"
    )
    assert {"heartbeat_us", "ceiling_us", "ratio", "batched_us_per_heartbeat"} <= result[
        "summary"
    ].keys()


@pytest.mark.timeout(30)
def test_writebehind(tmp_path: Path) -> None:
    result = run_bench(
        tmp_path, "writebehind", "--devices", "2000", "--rows", "1000", "--runs", "1"
    )
    for kind in ("seen", "presence"):
        assert result["summary"]["2000"][kind].keys() == {
            "snapshot_us_per_row",
            "apply_cpu_us_per_row",
            "apply_wall_us_per_row",
        }


@pytest.mark.timeout(40)
def test_mqtt_ingest(tmp_path: Path, mqtt_broker: tuple[str, int]) -> None:
    result = run_bench(
        tmp_path, "mqtt_ingest", "--messages", "1000", "--devices", "100", "--runs", "1"
    )
    assert {"qos0", "qos1"} <= result["summary"].keys()
    assert result["summary"]["qos0"].keys() >= {"hub_rate", "processed_all"}


@pytest.mark.timeout(40)
def test_mqtt_profile(tmp_path: Path) -> None:
    result = run_bench(tmp_path, "mqtt_profile", "--messages", "2000", "--devices", "100")
    assert result["summary"]["bridge.apply"] > 0


@pytest.mark.timeout(60)
def test_dashboard(tmp_path: Path) -> None:
    if shutil.which("chromium") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not on PATH; CI must install it (Debian package chromium)")
        pytest.skip("chromium is not on PATH (Debian package chromium); CI runs this")
    result = run_bench(
        tmp_path, "dashboard", "--devices", "200", "--runs", "1",
        "--stale-after", "1", "--offline-after", "30",
        bound=45.0,  # a browser start on top of the hub's
    )  # fmt: skip
    run = result["runs"][0]
    assert run["devices"] == 200
    assert 0 < run["rows_in_dom"] < 200  # virtualised: a screenful, not the fleet
    for phase in ("scroll", "stale"):
        assert {"p50_ms", "p95_ms", "max_ms"} <= result["summary"][phase].keys()
        assert run[phase]["frames"] > 0
    assert {"first_screen_ms", "stale_shown_ms"} <= result["summary"].keys()


@pytest.mark.timeout(60)
def test_scaleout_fleet(tmp_path: Path, redis_url: str) -> None:
    result = run_bench(
        tmp_path, "scaleout_fleet", "--instances", "2", "--runs", "1", "--devices", "300",
        "--samples", "10", "--subscribers", "3", "--redis", redis_url,
        bound=50.0,
    )  # fmt: skip
    two = result["summary"]["instances_2"]
    assert two["missing"] == 0
    assert two["redis_state_bytes_per_device"] > 0
    assert two["serve_s"] > 0
    assert two.keys() >= {"ws_p99_ms", "sse_p99_ms", "first_read_s", "instance_rss_growth_mib"}


@pytest.mark.timeout(60)
def test_scaleout(tmp_path: Path, redis_url: str) -> None:
    result = run_bench(
        tmp_path, "scaleout", "--instances", "2", "--runs", "1", "--devices", "300",
        "--lag-devices", "100", "--seconds", "1", "--redis", redis_url,
        bound=50.0,
    )  # fmt: skip
    two = result["summary"]["instances_2"]
    assert two["heartbeats_per_s"] > 0
    assert two["lag_p99_ms"] >= two["lag_p50_ms"] > 0
    assert result["summary"]["scripts"]["evalsha_us"] > 0


@pytest.mark.timeout(60)
def test_notify_scaleout(tmp_path: Path, redis_url: str, postgres_dsn: str) -> None:
    # The benchmark makes (and drops) a database of its own next to ``postgres_dsn``'s.
    result = run_bench(
        tmp_path, "notify_scaleout", "--instances", "2", "--runs", "1", "--devices", "200",
        "--redis", redis_url,
        bound=50.0,
    )  # fmt: skip
    two = result["summary"]["instances_2"]
    assert (two["duplicates"], two["missing"]) == (0, 0)
    assert two["deliveries_per_s"] > 0
    assert result["runs"][0]["received"] == 200
