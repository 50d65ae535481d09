"""The console's tables: signed-in sessions, and OpenID Connect sign-ins under way."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


class WebSession(SQLModel, table=True):
    """One browser signed in: the cookie holds a random secret, the row only its SHA-256.

    A session made from a personal token keeps the token's id: each request looks the token up again, so
    the session ends the moment the token is revoked or expires, on every replica."""

    __tablename__ = "web_session"

    id: int | None = Field(default=None, primary_key=True)
    secret_hash: str = Field(max_length=64, unique=True, index=True)
    user: str = Field(max_length=100)  # who acts: a Slack user ID, or `oidc:<claim>` for an unmapped person
    display: str = Field(default="", max_length=200)  # a name to show (the OIDC name or email)
    scope: str = Field(max_length=10)
    via: str = Field(max_length=10)  # token or oidc
    token_id: int | None = None
    csrf: str = Field(max_length=64)  # every form of this session carries it
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)


class OidcLogin(SQLModel, table=True):
    """An OpenID Connect sign-in between the redirect to the provider and its return: the state, nonce
    and PKCE verifier are kept here, not in a cookie, so the return may reach any replica."""

    __tablename__ = "oidc_login"

    id: int | None = Field(default=None, primary_key=True)
    state: str = Field(max_length=64, unique=True, index=True)
    nonce: str = Field(max_length=64)
    verifier: str = Field(max_length=128)
    next_path: str = Field(default="/", max_length=500)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
