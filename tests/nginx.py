"""nginx in front of the app for tests and the load benchmark: its own prefix, no root needed."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx:
    """nginx on a free port with `locations` (e.g. server.images.nginx_locations) in its server."""

    def __init__(self, prefix: Path, locations: str, user: str | None = None, http: str = ""):
        """`user`: the workers' user when started as root (nginx's default is nobody, as a
        deployment's www-data: it must be able to read the image cache); `http`: directives of
        the http block (an `upstream`)."""
        if not Path(NGINX).exists():
            raise FileNotFoundError("nginx is not installed (apt-get install nginx)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.prefix = Path(prefix)
        self.prefix.mkdir(parents=True)
        kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        for kind in kinds:  # the workers write here, whoever they run as
            (self.prefix / kind).mkdir()
            (self.prefix / kind).chmod(0o777)
        temp = " ".join(f"{kind}_temp_path {self.prefix / kind};" for kind in kinds)
        user = f"user {user};" if user and os.geteuid() == 0 else ""
        self.conf = self.prefix / "nginx.conf"
        self.conf.write_text(
            f"daemon off; {user} worker_processes 1; pid {self.prefix / 'nginx.pid'};\n"
            f"error_log {self.prefix / 'error.log'} warn;\n"
            "events { worker_connections 4096; }\n"
            f"http {{ access_log off; sendfile on; keepalive_requests 100000; {temp}\n{http}\n"
            f"server {{ listen 127.0.0.1:{self.port} backlog=2048;\n{locations} }} }}\n")
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 20) -> None:
        """Start nginx and wait until it answers."""
        self.process = subprocess.Popen([NGINX, "-p", str(self.prefix), "-c", str(self.conf)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/img/-", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not come up: {(self.prefix / 'error.log').read_text()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)
