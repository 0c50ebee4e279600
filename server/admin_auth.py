"""Admin authentication: server-side login sessions (logout and expiry end them for good) and
lockout with exponential backoff after failed logins from one network."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select

from experiments.db import Database
from experiments.db.models import AdminSession, LoginFailures, utcnow

MAX_AGE = timedelta(hours=12)  # a login lasts at most this long
IDLE = timedelta(hours=1)  # ... and ends after this long without a request
FREE_FAILURES = 5  # failed logins before the lockout starts
FIRST_LOCK = timedelta(seconds=30)  # doubled with each further failure
LONGEST_LOCK = timedelta(hours=1)
MIN_PASSWORD_LENGTH = 12


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def open_session(db: Database, network_key: str) -> str:
    """A new login; returns the random id the cookie carries."""
    sid = secrets.token_urlsafe(32)
    with db.write() as session:
        session.add(AdminSession(sid_sha256=_hash(sid), network_key=network_key,
                                 created_at=utcnow(), last_seen_at=utcnow()))
    return sid


def session_valid(db: Database, sid: str | None, now: datetime | None = None) -> bool:
    """Whether the login `sid` is current (not revoked, not too old, not idle too long);
    refreshes its last-seen time at most once a minute."""
    if not sid:
        return False
    now = now or utcnow()
    with db.read() as session:
        row = session.scalars(select(AdminSession).where(
            AdminSession.sid_sha256 == _hash(sid))).first()
    if row is None or row.revoked_at is not None:
        return False
    if now - row.created_at > MAX_AGE or now - row.last_seen_at > IDLE:
        return False
    if now - row.last_seen_at > timedelta(minutes=1):
        with db.write() as session:
            session.get(AdminSession, row.id).last_seen_at = now
    return True


def close_session(db: Database, sid: str | None) -> None:
    """Revoke a login: its cookie opens nothing any more."""
    if not sid:
        return
    with db.write() as session:
        row = session.scalars(select(AdminSession).where(
            AdminSession.sid_sha256 == _hash(sid))).first()
        if row is not None and row.revoked_at is None:
            row.revoked_at = utcnow()


def locked_for(db: Database, network_key: str, now: datetime | None = None) -> int:
    """Seconds this network must still wait before it may try a password (0: it may)."""
    now = now or utcnow()
    with db.read() as session:
        row = session.get(LoginFailures, network_key)
    if row is None or row.locked_until is None or row.locked_until <= now:
        return 0
    return max(1, int((row.locked_until - now).total_seconds() + 0.999))


def record_failure(db: Database, network_key: str, now: datetime | None = None) -> int:
    """Count a failed login; returns the lockout it starts, in seconds (0: none yet)."""
    now = now or utcnow()
    with db.write() as session:
        row = session.get(LoginFailures, network_key)
        if row is None:
            row = LoginFailures(network_key=network_key, failures=0, last_failure_at=now)
            session.add(row)
        row.failures += 1
        row.last_failure_at = now
        extra = row.failures - FREE_FAILURES - 1
        if extra < 0:
            return 0
        lock = min(LONGEST_LOCK, FIRST_LOCK * 2 ** min(extra, 20))
        row.locked_until = now + lock
        return int(lock.total_seconds())


def record_success(db: Database, network_key: str) -> None:
    """A right password clears the network's failures."""
    with db.write() as session:
        row = session.get(LoginFailures, network_key)
        if row is not None:
            session.delete(row)
