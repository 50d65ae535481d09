"""Personal API tokens: create (shown once), list, revoke, and recognise one on a request.

Every request looks its token up by hash, with no cache, so a revocation is refused at once on every
replica. The last use is written at most once a LAST_USE_EVERY per token, by a conditional update that
two replicas may race on harmlessly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app import db
from app.durations import parse_setting
from app.errors import NotFound, ServiceError
from app.identity import logic
from app.identity.models import ApiToken, TokenRead
from app.inputs import fit

log = logging.getLogger(__name__)
LAST_USE_EVERY = timedelta(minutes=1)
MAX_LIFETIME = timedelta(days=3660)


class InvalidToken(ServiceError):
    status_code = 422


@dataclass(frozen=True)
class Recognised:
    """A presented personal token, as the database knows it (or why it is refused)."""

    token: ApiToken | None
    refusal: str | None  # unknown, revoked or expired; None when the token may be used


def lifetime(expires: str | None) -> timedelta | None:
    """`90d` -> 90 days; None or `never` -> no expiry. Raises InvalidToken naming the field."""
    if expires is None or expires.strip().lower() == "never":
        return None
    try:
        seconds = parse_setting(expires)
    except ValueError as exc:
        raise InvalidToken(f"expires: {exc}; or `never`") from None
    if seconds > MAX_LIFETIME.total_seconds():
        raise InvalidToken("expires: at most 3660d (ten years); or `never`")
    return timedelta(seconds=seconds)


def check_request(user: str, scope: str, name: str) -> logic.Scope:
    if logic.PERSON.fullmatch(user) is None:
        raise InvalidToken(
            f"user: a Slack user ID such as U0ANA (got {fit(user, 40)!r}); the automation identity is "
            "SLOGUARD_API_TOKEN, named in sloguard.yaml `automation:`"
        )
    try:
        found = logic.Scope(scope)
    except ValueError:
        raise InvalidToken(
            f"scope: one of {', '.join(s.value for s in logic.Scope)} (got {fit(scope, 20)!r})"
        ) from None
    if any(ord(c) < 32 for c in name):
        raise InvalidToken("name: no control characters")
    return found


def create(
    engine: Engine,
    *,
    user: str,
    scope: str,
    name: str,
    expires: str | None,
    created_by: str,
    now: datetime,
) -> tuple[ApiToken, str]:
    """The stored row and the token itself, which is shown once and kept nowhere."""
    checked = check_request(user, scope, name)
    life = lifetime(expires)
    token = logic.new_token()

    def unit(session: Session, _events: db.Events) -> ApiToken:
        row = ApiToken(
            user=user,
            name=name,
            scope=checked.value,
            token_hash=logic.digest(token),
            hint=logic.hint(token),
            created_at=now,
            created_by=created_by,
            expires_at=now + life if life is not None else None,
        )
        session.add(row)
        session.flush()
        return row

    row = db.unit_of_work(engine, None, unit)
    log.info("api token created", extra={"token_id": row.id, "user": user, "scope": checked.value})
    return row, token


def state(row: ApiToken, now: datetime) -> str:
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    return "active"


def read(row: ApiToken, now: datetime) -> TokenRead:
    return TokenRead.model_validate({**row.model_dump(), "state": state(row, now)})


def tokens(session: Session, *, user: str | None = None) -> list[ApiToken]:
    query = select(ApiToken).order_by(col(ApiToken.id))
    if user is not None:
        query = query.where(ApiToken.user == user)
    return list(session.exec(query))


def revoke(engine: Engine, token_id: int, by: str, now: datetime) -> ApiToken:
    """Revoke a token (a second revoke keeps the first one's time and author)."""

    def unit(session: Session, _events: db.Events) -> ApiToken:
        if session.get(ApiToken, token_id) is None:
            raise NotFound(f"token {token_id} not found")
        session.execute(  # conditional: of two revokes at once, the first keeps its time and author
            sa.update(ApiToken)
            .where(col(ApiToken.id) == token_id, col(ApiToken.revoked_at).is_(None))
            .values(revoked_at=now, revoked_by=by)
        )
        session.expire_all()
        row = session.get(ApiToken, token_id)
        assert row is not None
        return row

    row = db.unit_of_work(engine, None, unit)
    log.info("api token revoked", extra={"token_id": token_id, "by": by})
    return row


def recognise(engine: Engine, presented: str, now: datetime) -> Recognised:
    """The personal token `presented` is, if it is one, and whether it may be used now."""
    if not logic.well_formed(presented):
        return Recognised(None, "unknown")
    with Session(engine) as session:
        row = session.exec(select(ApiToken).where(ApiToken.token_hash == logic.digest(presented))).first()
    if row is None:
        return Recognised(None, "unknown")
    found = state(row, now)
    if found != "active":
        return Recognised(row, found)
    _touch(engine, row, now)
    return Recognised(row, None)


def _touch(engine: Engine, row: ApiToken, now: datetime) -> None:
    """Record the use, at most once a LAST_USE_EVERY: a refused write (a locked SQLite, a replica that
    won the same update) never fails the request it belongs to."""
    if row.last_used_at is not None and now - row.last_used_at < LAST_USE_EVERY:
        return
    stale = now - LAST_USE_EVERY

    def unit(session: Session, _events: db.Events) -> None:
        session.execute(
            sa.update(ApiToken)
            .where(col(ApiToken.id) == row.id)
            .where(sa.or_(col(ApiToken.last_used_at).is_(None), col(ApiToken.last_used_at) <= stale))
            .values(last_used_at=now)
        )

    try:
        db.unit_of_work(engine, None, unit)
    except sa_exc.OperationalError as exc:
        log.warning("token last use not recorded", extra={"token_id": row.id, "error": type(exc).__name__})
