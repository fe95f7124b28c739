"""Run a real ``lastseen serve`` process: for tests, benchmarks and demos."""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


_PRINTED_KEY = re.compile(r"lsk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")


class HubProcess:
    """A real ``lastseen serve`` subprocess on a free loopback port.

    Unless told otherwise it runs with ``--open`` (no authentication), the way a
    local trial does; give ``LASTSEEN_ADMIN_KEY`` in ``env`` for a keyed hub, or
    ``open_auth=False`` for one that creates its first admin key (``printed_key()``).
    With ``--tls-cert`` among the arguments it speaks HTTPS and trusts that
    certificate (self-signed, for tests).
    """

    def __init__(
        self,
        data_dir: Path,
        *args: str,
        env: dict[str, str] | None = None,
        open_auth: bool | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.admin_key: str | None = (env or {}).get("LASTSEEN_ADMIN_KEY")
        if open_auth is None:
            open_auth = self.admin_key is None
        self.args = ("--open", *args) if open_auth and "--open" not in args else args
        self.port = free_port()
        self.verify: ssl.SSLContext | bool = True
        scheme = "http"
        if "--tls-cert" in args:
            scheme = "https"
            self.verify = ssl.create_default_context(cafile=args[args.index("--tls-cert") + 1])
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        self.log_path = data_dir.parent / f"{data_dir.name}-hub.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> None:
        command = [
            sys.executable, "-m", "lastseen", "serve",
            "--host", "127.0.0.1", "--port", str(self.port), "--data-dir", str(self.data_dir),
            *self.args,
        ]  # fmt: skip
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()
        deadline = time.monotonic() + timeout
        # One client for every poll: a new one per poll costs ~50 ms of CPU (its TLS
        # context), which competes with the starting hub on a small machine.
        with httpx.Client(timeout=0.5, verify=self.verify) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"hub exited early:\n{self.log()}")
                try:
                    if client.get(self.url + "/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"hub did not start within {timeout}s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        proc, self.proc = self.proc, None
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def printed_key(self) -> str | None:
        """The first admin key this hub printed at its first start, if it did."""
        found = _PRINTED_KEY.search(self.log())
        return found.group(0) if found else None

    def client(self, key: str | None = None) -> httpx.Client:
        """An HTTP client for this hub, sending ``key`` (default: the admin key)."""
        key = key or self.admin_key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10, verify=self.verify)
