"""ApiToken: a person's credential for the API, stored as its SHA-256 only."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow
from app.identity.logic import Scope


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    user: str = Field(max_length=100, index=True)  # the owner: every request with it acts as this person
    name: str = Field(default="", max_length=100)  # the owner's label for it ("laptop")
    scope: str = Field(max_length=10)  # read, respond, change or admin (app/identity/logic.Scope)
    token_hash: str = Field(max_length=64, unique=True, index=True)  # SHA-256 of the whole token, hex
    hint: str = Field(max_length=20)  # `sloguard_pat_AbCd…`, to tell one token from another in a list
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: str = Field(max_length=100)  # `cli`, or the admin who made it through the API
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_by: str | None = Field(default=None, max_length=100)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # to the minute (LAST_USE_EVERY)


class TokenCreate(SQLModel):
    """A personal token for `user` (a Slack user ID), within `scope`, for a lifetime."""

    # The schema says all the service checks (app/identity/service.check_request), so that a request it
    # allows is one the service accepts; the service still checks, and names the field.
    user: str = Field(max_length=31, schema_extra={"pattern": r"^[UW][A-Z0-9]{1,30}$"})  # a Slack user ID
    scope: Scope
    name: str = Field(default="", max_length=100, schema_extra={"pattern": r"^[^\x00-\x1f\x7f]*$"})
    # A lifetime of 1s to 999d, `never`, or null for never (the CLI also takes up to 3660d).
    expires: str | None = Field(
        default="90d", max_length=5, schema_extra={"pattern": r"^(never|[1-9][0-9]{0,2}[smhd])$"}
    )


class TokenRead(SQLModel):
    id: int
    user: str
    name: str
    scope: str
    hint: str
    state: str  # active, expired or revoked
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    last_used_at: datetime | None


class TokenCreated(TokenRead):
    token: str  # shown this once; only its hash is kept
