"""Console sessions: made at sign-in (a personal token, or OpenID Connect), found on each request, ended
at sign-out, at their expiry, or the moment the token they came from is revoked or expires.

The cookie holds 32 random bytes; the database keeps their SHA-256 and a CSRF secret that every form of
the session carries. Nothing is cached, so any replica finds a session and sees its end at once.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app import db
from app.identity import service as identity
from app.identity.logic import Actor, Scope
from app.identity.models import ApiToken
from app.web.models import OidcLogin, WebSession

log = logging.getLogger(__name__)
COOKIE = "sloguard_session"
OIDC_LOGIN_LIFETIME = timedelta(minutes=10)


@dataclass(frozen=True)
class Viewer:
    """The signed-in person of a console request."""

    session_id: int
    user: str
    display: str
    scope: Scope
    via: str
    token_id: int | None
    csrf: str
    expires_at: datetime

    @property
    def actor(self) -> Actor:
        return Actor(self.user, via="console", token_id=self.token_id)

    def may(self, needed: Scope) -> bool:
        return self.scope.reaches(needed)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def start(
    engine: Engine,
    *,
    user: str,
    display: str,
    scope: Scope,
    via: str,
    token_id: int | None,
    expires_at: datetime,
    now: datetime,
) -> str:
    """A new session; returns the cookie's secret (shown to the browser once, kept nowhere)."""
    secret = secrets.token_urlsafe(32)

    def unit(session: Session, _events: db.Events) -> None:
        # Expired sessions and abandoned sign-ins go as new ones come: the table stays the size of its use.
        session.execute(sa.delete(WebSession).where(col(WebSession.expires_at) <= now))
        session.execute(sa.delete(OidcLogin).where(col(OidcLogin.created_at) <= now - OIDC_LOGIN_LIFETIME))
        session.add(
            WebSession(
                secret_hash=_digest(secret),
                user=user,
                display=display[:200],
                scope=scope.value,
                via=via,
                token_id=token_id,
                csrf=secrets.token_urlsafe(32),
                created_at=now,
                expires_at=expires_at,
            )
        )

    db.unit_of_work(engine, None, unit)
    log.info("console session started", extra={"user": user, "via": via, "token_id": token_id})
    return secret


def find(engine: Engine, secret: str | None, now: datetime) -> Viewer | None:
    """The session a cookie names, if it is still good: not expired, and its token (if any) still active."""
    if not secret or len(secret) > 100:
        return None
    with Session(engine) as session:
        row = session.exec(select(WebSession).where(WebSession.secret_hash == _digest(secret))).first()
        if row is None or row.expires_at <= now:
            return None
        if row.token_id is not None:
            token = session.get(ApiToken, row.token_id)
            if token is None or identity.state(token, now) != "active":
                return None
    assert row.id is not None
    return Viewer(
        session_id=row.id,
        user=row.user,
        display=row.display,
        scope=Scope(row.scope),
        via=row.via,
        token_id=row.token_id,
        csrf=row.csrf,
        expires_at=row.expires_at,
    )


def end(engine: Engine, secret: str | None) -> None:
    if not secret:
        return

    def unit(session: Session, _events: db.Events) -> None:
        session.execute(sa.delete(WebSession).where(col(WebSession.secret_hash) == _digest(secret)))

    db.unit_of_work(engine, None, unit)


def same_secret(presented: str | None, expected: str) -> bool:
    return presented is not None and secrets.compare_digest(presented.encode(), expected.encode())


# ---------------------------------------------------------------- OpenID Connect sign-ins under way


def begin_login(
    engine: Engine, *, state: str, nonce: str, verifier: str, next_path: str, now: datetime
) -> None:
    def unit(session: Session, _events: db.Events) -> None:
        session.add(
            OidcLogin(state=state, nonce=nonce, verifier=verifier, next_path=next_path, created_at=now)
        )

    db.unit_of_work(engine, None, unit)


def take_login(engine: Engine, state: str, now: datetime) -> tuple[str, str, str] | None:
    """The nonce, PKCE verifier and page to return to of the sign-in `state` names, used once: a replayed
    or stale return finds nothing (of two returns at once, one wins the delete)."""

    def unit(session: Session, _events: db.Events) -> tuple[str, str, str] | None:
        row = session.exec(select(OidcLogin).where(OidcLogin.state == state)).first()
        if row is None:
            return None
        found = (row.nonce, row.verifier, row.next_path)
        fresh = row.created_at > now - OIDC_LOGIN_LIFETIME
        deleted: Any = session.execute(sa.delete(OidcLogin).where(col(OidcLogin.id) == row.id))
        return found if fresh and deleted.rowcount == 1 else None

    return db.unit_of_work(engine, None, unit)
