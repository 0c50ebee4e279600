"""Security helpers: rate limits, CSRF tokens, Origin checks and response headers."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken
from flask import Flask, Response, current_app, request, session
from werkzeug.exceptions import Forbidden, TooManyRequests

from server.platforms import MTURK_HOSTS


class RateLimiter:
    """Fixed one-minute windows per key, in this process (each gunicorn worker counts alone)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, int]] = {}

    def hit(self, key: str, per_minute: int) -> None:
        """Count one request for `key`; raise 429 when the window's budget is spent."""
        if not current_app.config["INTERPSY"].rate_limits:
            return
        window = int(time.monotonic() // 60)
        with self._lock:
            start, count = self._windows.get(key, (window, 0))
            if start != window:
                start, count = window, 0
            count += 1
            self._windows[key] = (start, count)
            if len(self._windows) > 50_000:
                self._windows = {k: v for k, v in self._windows.items() if v[0] == window}
        if count > per_minute:
            error = TooManyRequests("too many requests; wait a minute and try again")
            error.retry_after = 60 - int(time.monotonic() % 60)  # type: ignore[attr-defined]
            raise error


def client_ip() -> str:
    """The client's address (ProxyFix has already applied trusted X-Forwarded-For hops)."""
    return request.remote_addr or "unknown"


def same_origin_or_absent() -> None:
    """Refuse a state-changing form POST whose Origin (or Referer) names another site."""
    origin = request.headers.get("Origin")
    if origin is None:
        referer = request.headers.get("Referer")
        if not referer:
            return
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    if origin == "null":
        return  # privacy settings or sandboxed frames; the signed form token still applies
    if origin.rstrip("/") != request.host_url.rstrip("/"):
        current_app.logger.warning(
            "form refused: Origin %s is not this server's %s (behind a proxy, pass the browser's "
            "Host with its port: nginx `proxy_set_header Host $http_host;`, and its scheme: "
            "`X-Forwarded-Proto $scheme` with INTERPSY_PROXY_HOPS)", origin, request.host_url)
        raise Forbidden("this form must be sent from the study page")


# ---- admin CSRF: a per-login-session token in the signed Flask session cookie ---------
def csrf_token() -> str:
    """The CSRF token of this browser session (created on first use)."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """Refuse a form POST without the matching CSRF token or from another origin."""
    same_origin_or_absent()
    sent = request.form.get("csrf_token", "")
    expected = session.get("csrf", "")
    if not expected or not hmac.compare_digest(str(sent), str(expected)):
        raise Forbidden("the form expired or was not sent from this site; reload the page")


# ---- participant entry: an encrypted, time-limited token for the entry facts (works without
# cookies, so also inside MTurk's cross-site iframe where third-party cookies are blocked; and
# the platform ids in it cannot be read from the URL, the Referer or a log) ----------------
def _entry_cipher() -> Fernet:
    digest = hashlib.sha256(b"interpsy-entry:" + current_app.secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def sign_entry(data: dict[str, Any]) -> str:
    """Encrypt and sign the entry facts (experiment, source, platform ids)."""
    return _entry_cipher().encrypt(json.dumps(data, sort_keys=True).encode()).decode()


def read_entry(token: str) -> dict[str, Any]:
    """The entry facts; 403 when forged or too old."""
    cipher = _entry_cipher()
    try:
        data = cipher.decrypt(token.encode(), ttl=current_app.config["INTERPSY"].consent_max_age_s)
    except InvalidToken:
        try:  # tell an expired page from a forged one
            cipher.decrypt(token.encode())
        except (InvalidToken, ValueError):
            raise Forbidden("this form was not sent from the study page") from None
        raise Forbidden("this page expired; open the study link from your platform again") from None
    except ValueError:
        raise Forbidden("this form was not sent from the study page") from None
    return json.loads(data)


def network_key(address: str) -> str:
    """A keyed hash of an IP address: sessions per network can be counted, the address is
    never stored."""
    return hmac.new(current_app.secret_key.encode(), f"ip:{address}".encode(),
                    hashlib.sha256).hexdigest()[:32]


# ---- headers ----------------------------------------------------------------------------
def _csp(frame_ancestors: str) -> str:
    return ("default-src 'self'; img-src 'self' data: blob:; script-src 'self'; "
            "style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
            f"form-action 'self' {' '.join(MTURK_HOSTS)}; frame-ancestors {frame_ancestors}")


def add_security_headers(response: Response) -> Response:
    """CSP, nosniff, no referrer to other sites (entry URLs carry platform ids), framing rules."""
    admin = request.path.startswith("/admin")
    # MTurk shows ExternalQuestion pages in an iframe on mturk.com; nothing else may frame us.
    ancestors = "'none'" if admin else "'self' " + " ".join(MTURK_HOSTS)
    response.headers.setdefault("Content-Security-Policy", _csp(ancestors))
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin-allow-popups")
    response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if admin:
        response.headers.setdefault("X-Frame-Options", "DENY")
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if "Cache-Control" not in response.headers and not request.path.startswith(("/static", "/img")):
        response.headers["Cache-Control"] = "no-store"
    return response


def install(app: Flask) -> None:
    """Attach the rate limiter and the header hook to `app`."""
    app.extensions["interpsy_limiter"] = RateLimiter()
    app.after_request(add_security_headers)


def limiter() -> RateLimiter:
    return current_app.extensions["interpsy_limiter"]
