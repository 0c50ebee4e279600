"""Server configuration: one frozen dataclass, read from the environment or given by tests."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from experiments.db import database_url_from_env, interpsy_home
from experiments.errors import InterpsyError
from server.admin_auth import MIN_PASSWORD_LENGTH


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class ServerConfig:
    """Everything create_app needs; `from_env` reads INTERPSY_* variables."""

    database_url: str | None = None
    secret_key: str | None = None
    debug: bool = False
    testing: bool = False
    admin_password: str | None = None
    image_cache: Path | None = None  # default: INTERPSY_HOME/image-cache
    image_format: str = "webp"  # webp | jpeg | png (png: serve the masters as they are)
    image_quality: int = 90
    rate_limits: bool = True
    entry_per_minute: int = 30  # consent submissions per client IP and worker
    api_per_minute: int = 600  # API calls per session and worker
    login_per_minute: int = 10  # admin login attempts per client IP and worker
    proxy_hops: int = 0  # X-Forwarded-* hops to trust (behind nginx: 1)
    # the direct peers whose X-Forwarded-* headers count (addresses or networks)
    trusted_proxies: tuple[str, ...] = ("127.0.0.0/8", "::1")
    check_schema: bool = True
    secure_cookies: bool | None = None  # None: only behind a (TLS) proxy, i.e. proxy_hops > 0
    min_window: tuple[int, int] = (940, 600)
    consent_max_age_s: int = 48 * 3600  # entry links and consent forms expire after this
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides: Any) -> ServerConfig:
        """Read INTERPSY_DATABASE_URL, INTERPSY_SECRET_KEY, INTERPSY_ADMIN_PASSWORD, ... ."""
        cache = os.environ.get("INTERPSY_IMAGE_CACHE")
        values: dict[str, Any] = dict(
            database_url=os.environ.get("INTERPSY_DATABASE_URL") or None,
            secret_key=os.environ.get("INTERPSY_SECRET_KEY") or None,
            debug=_flag("INTERPSY_DEBUG", False),
            admin_password=os.environ.get("INTERPSY_ADMIN_PASSWORD") or None,
            image_cache=Path(cache) if cache else None,
            image_format=os.environ.get("INTERPSY_IMAGE_FORMAT", "webp"),
            rate_limits=_flag("INTERPSY_RATE_LIMITS", True),
            proxy_hops=int(os.environ.get("INTERPSY_PROXY_HOPS", "0") or 0),

            secure_cookies=(_flag("INTERPSY_SECURE_COOKIES", False)
                            if os.environ.get("INTERPSY_SECURE_COOKIES") else None),
        )
        if os.environ.get("INTERPSY_TRUSTED_PROXIES"):
            values["trusted_proxies"] = tuple(
                a.strip() for a in os.environ["INTERPSY_TRUSTED_PROXIES"].split(",") if a.strip())
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def resolved(self) -> ServerConfig:
        """Fill defaults that need the environment; refuse unsafe combinations."""
        if self.admin_password and len(self.admin_password) < MIN_PASSWORD_LENGTH:
            raise InterpsyError(f"INTERPSY_ADMIN_PASSWORD is shorter than {MIN_PASSWORD_LENGTH} "
                                f"characters; choose a longer one (python -c 'import secrets; "
                                f"print(secrets.token_urlsafe(16))')")
        if self.image_format not in ("webp", "jpeg", "png"):
            raise InterpsyError(f"image format {self.image_format!r}: use webp, jpeg or png")
        secret = self.secret_key
        if not secret:
            if not (self.debug or self.testing):
                raise InterpsyError("INTERPSY_SECRET_KEY is not set; set it to a long random "
                                    "string (python -c 'import secrets; print(secrets."
                                    "token_urlsafe(48))') or run with --debug")
            secret = "interpsy-debug-only-secret"
        return replace(self, secret_key=secret,
                       database_url=self.database_url or database_url_from_env(),
                       image_cache=self.image_cache or interpsy_home() / "image-cache")
