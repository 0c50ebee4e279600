"""The demo's server: `interpsy serve` (gunicorn) in a subprocess, its secrets and port."""
from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request

from experiments.demo.common import DemoFolder
from experiments.errors import InterpsyError


def demo_secrets(folder: DemoFolder) -> dict[str, str]:
    """The server's secret key and the admin password, made once and kept (mode 0600)."""
    if folder.secrets.is_file():
        return json.loads(folder.secrets.read_text())
    values = {"secret_key": secrets.token_urlsafe(48), "admin_password": secrets.token_urlsafe(12)}
    folder.secrets.write_text(json.dumps(values))
    folder.secrets.chmod(0o600)
    return values


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


DEMO_THREADS = 8  # threads per gunicorn worker


class DemoServer:
    """`interpsy serve` (gunicorn) in a subprocess, waited for until it answers."""

    def __init__(self, folder: DemoFolder, port: int, workers: int,
                 database_url: str | None = None):
        self.base_url = f"http://127.0.0.1:{port}"
        keys = demo_secrets(folder)
        self.admin_password = keys["admin_password"]
        env = {**os.environ, "INTERPSY_SECRET_KEY": keys["secret_key"],
               "INTERPSY_ADMIN_PASSWORD": keys["admin_password"],
               "INTERPSY_DATABASE_URL": database_url or folder.database_url,
               "INTERPSY_IMAGE_CACHE": str(folder.root / "image-cache"),
               "INTERPSY_RATE_LIMITS": "0"}
        self.log = open(folder.root / "server.log", "ab")  # noqa: SIM115  (the server's lifetime)
        # threads: with no proxy in front, a browser's idle keep-alive connection would hold a
        # sync worker until gunicorn killed it; gthread workers poll idle connections
        self.process = subprocess.Popen(
            [sys.executable, "-m", "experiments.cli", "serve", "--port", str(port),
             "--workers", str(workers), "--threads", str(DEMO_THREADS)], env=env,
            stdout=self.log, stderr=subprocess.STDOUT)
        self._wait(folder)

    def _wait(self, folder: DemoFolder, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise InterpsyError(f"the server stopped at start; see {folder.root / 'server.log'}")
            try:
                with urllib.request.urlopen(self.base_url + "/api/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise InterpsyError(f"the server did not answer within {timeout:.0f} s; see "
                            f"{folder.root / 'server.log'}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


