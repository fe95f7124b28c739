"""Run every benchmark, each as ``python -m bench.NAME`` in a fresh process.

``--quick`` uses small fleets, one run and short durations: the whole set takes
under 3 minutes on a 2-core machine, to check that everything still works and see
rough numbers. Without it each benchmark runs its full default configuration
(1 000 000 devices where the issue asks for them, medians of 3 runs): expect the
best part of an hour. Each benchmark's output is shown as it runs; its summary
table is repeated at the end, with how long it took and whether it passed.

    .venv/bin/python -m bench.run_all --quick                 # every benchmark, quickly
    .venv/bin/python -m bench.run_all                         # the full configuration
    .venv/bin/python -m bench.run_all --quick --only restart memory
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: name → (full arguments, quick arguments)
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "heartbeat_throughput": ([], ["--devices", "10000", "--runs", "1", "--seconds", "3"]),
    "inprocess": ([], ["--requests", "20000", "--runs", "1"]),
    "writebehind": ([], ["--devices", "20000", "--rows", "10000", "--runs", "1"]),
    "timeout_lag": ([], ["--devices", "5000", "--runs", "1"]),
    "burst": ([], ["--devices", "5000", "--runs", "1"]),
    "store_floor": ([], ["--devices", "5000", "--runs", "1"]),
    "push_latency": ([], ["--samples", "100", "--runs", "1"]),
    "memory": ([], ["--devices", "20000", "--runs", "1"]),
    "restart": (
        # The 1 000 000-device setup written with the store, not registered over HTTP.
        ["--build"],
        ["--devices", "20000", "--runs", "1", "--stale-after", "1", "--offline-after", "2"],
    ),
    # Needs Debian's chromium (headless, driven by Playwright).
    "dashboard": ([], ["--devices", "2000", "--runs", "1"]),
    # Needs the PostgreSQL server of --admin-dsn (default: postgres on 127.0.0.1:5432).
    "postgres_store": ([], ["--devices", "10000", "--runs", "1"]),
    # Need Redis on 127.0.0.1:6379 (scale-out mode); scaleout also needs wrk.
    "scaleout": (
        [],
        ["--runs", "1", "--seconds", "1", "--devices", "1000", "--lag-devices", "300"],
    ),
    "scaleout_fleet": (
        [],
        ["--runs=1", "--instances=2", "--devices=2000", "--samples=30", "--subscribers=50"],
    ),
    # Needs Mosquitto on 127.0.0.1:1883.
    "mqtt_ingest": ([], ["--messages", "50000", "--devices", "1000", "--runs", "1", "--qos", "0"]),
}
QUICK_BUDGET = 180.0


def tables(output: str) -> str:
    """The summary tables in a benchmark's output: a title line, a rule, the rows."""
    lines = output.splitlines()
    found: list[str] = []
    for index in range(1, len(lines)):
        rule = lines[index]
        if rule and set(rule) == {"-"} and len(rule) == len(lines[index - 1]):
            found.append(lines[index - 1])
            for line in lines[index:]:
                if not line.strip():
                    break
                found.append(line)
            found.append("")
    return "\n".join(found)


def run(name: str, arguments: list[str]) -> tuple[int, float, str]:
    """Run one benchmark, echoing its output; (exit status, seconds, output)."""
    command = [sys.executable, "-m", f"bench.{name}", *arguments]
    print(f"\n=== {' '.join(['python', *command[1:]])}", flush=True)
    started = time.monotonic()
    proc = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    captured = []
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        captured.append(line)
    status = proc.wait()
    return status, time.monotonic() - started, "".join(captured)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small and fast (< 3 minutes)")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run just these")
    args = parser.parse_args()
    names = args.only or list(BENCHMARKS)
    started = time.monotonic()
    outcomes = []
    for name in names:
        full, quick = BENCHMARKS[name]
        status, seconds, output = run(name, quick if args.quick else full)
        outcomes.append((name, status, seconds, output))
    total = time.monotonic() - started

    print("\n\n==================== summary ====================")
    for name, status, seconds, output in outcomes:
        verdict = "ok" if status == 0 else f"FAILED (exit {status})"
        print(f"\n## {name}: {verdict}, {seconds:.0f} s")
        print(tables(output).rstrip() or "(no summary table)")
    print(f"total {total:.0f} s")
    if args.quick and total > QUICK_BUDGET and args.only is None:
        print(f"warning: the quick run took longer than its {QUICK_BUDGET:.0f} s budget")
    if any(status != 0 for _, status, _, _ in outcomes):
        sys.exit(1)


if __name__ == "__main__":
    main()
