"""The Flask application factory: participant pages, JSON API, admin."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from experiments.db import Database
from experiments.errors import InterpsyError
from experiments.sessions import SessionService
from server import errors, logs, security
from server.config import ServerConfig
from server.images import ImageStore


@dataclass
class AppState:
    """What the request handlers share: the database, the session service, the image store."""

    config: ServerConfig
    db: Database
    service: SessionService
    images: ImageStore


class FromTrustedProxies:
    """WSGI middleware: requests from a trusted proxy's address go through `behind` (ProxyFix,
    which believes their X-Forwarded-* headers); any other peer reached the app directly, so
    its X-Forwarded-* headers are dropped (forged, they would set the client address that the
    per-network cap counts)."""

    def __init__(self, behind, direct, trusted: tuple[str, ...]):
        self.behind, self.direct = behind, direct
        self.networks = []
        for address in trusted:
            try:
                self.networks.append(ipaddress.ip_network(address, strict=False))
            except ValueError:
                raise InterpsyError(f"INTERPSY_TRUSTED_PROXIES: {address!r} is not an IP address "
                                    f"or network (e.g. 127.0.0.1, 10.0.0.0/8)") from None

    def _trusted(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def __call__(self, environ, start_response):
        if self._trusted(environ.get("REMOTE_ADDR", "")):
            return self.behind(environ, start_response)
        for name in [k for k in environ if k.startswith("HTTP_X_FORWARDED_")]:
            del environ[name]
        return self.direct(environ, start_response)


def create_app(config: ServerConfig | dict[str, Any] | None = None) -> Flask:
    """Build the app; `config` is a ServerConfig, a dict of its fields, or None (environment)."""
    if config is None:
        config = ServerConfig.from_env()
    elif isinstance(config, dict):
        config = ServerConfig.from_env(**config)
    config = config.resolved()
    db = Database(config.database_url)
    if config.check_schema:
        db.require_current()  # never migrate from a worker; `interpsy db upgrade` does that

    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=config.secret_key, INTERPSY=config, TESTING=config.testing,
        DEBUG=config.debug, PROPAGATE_EXCEPTIONS=False, TRAP_HTTP_EXCEPTIONS=False,
        MAX_CONTENT_LENGTH=64 * 1024, MAX_FORM_MEMORY_SIZE=64 * 1024,
        SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=(config.secure_cookies if config.secure_cookies is not None
                               else config.proxy_hops > 0),
        SESSION_COOKIE_NAME="interpsy_admin",
        SEND_FILE_MAX_AGE_DEFAULT=3600)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if config.proxy_hops:
        app.wsgi_app = FromTrustedProxies(  # type: ignore[method-assign]
            ProxyFix(app.wsgi_app, x_for=config.proxy_hops, x_proto=config.proxy_hops,
                     x_host=config.proxy_hops), app.wsgi_app, config.trusted_proxies)
    app.extensions["interpsy"] = AppState(
        config, db, SessionService(db),
        ImageStore(db, config.image_cache, config.image_format, config.image_quality))

    from server import admin, api, participant

    app.register_blueprint(participant.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(admin.bp)
    security.install(app)
    errors.install(app)
    logs.install_werkzeug_filter()  # the development server's request log: no platform ids
    app.jinja_env.globals["csrf_token"] = security.csrf_token
    return app
