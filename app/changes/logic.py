"""MLflow's registry webhooks, read: the signature, the timestamp's age, the payload, and which alias move
is the suspect. Pure: values in, values or a `Refused` out.

MLflow signs as Standard Webhooks do (mlflow/webhooks/delivery.py): `X-MLflow-Signature: v1,<base64 of
HMAC-SHA256(secret, f"{delivery_id}.{timestamp}.{body}")>`, with `X-MLflow-Delivery-Id` (a UUID, the same
on each retry of one delivery) and `X-MLflow-Timestamp` (Unix seconds). The body is the JSON
`{"entity", "action", "timestamp", "data"}`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

SIGNATURE_HEADER = "X-MLflow-Signature"
DELIVERY_HEADER = "X-MLflow-Delivery-Id"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
SIGNED_HEADERS = (SIGNATURE_HEADER, DELIVERY_HEADER, TIMESTAMP_HEADER)
SIGNATURE_VERSION = "v1"
TOLERANCE = 300  # seconds either side of now, as Standard Webhooks recommends
_DELIVERY_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")
NAME_LIMIT, ALIAS_LIMIT, VERSION_LIMIT, TEXT_LIMIT = 200, 100, 100, 2000

# The kinds of change sloguard records, by MLflow's (entity, action).
ALIAS_SET, ALIAS_DELETED, VERSION_CREATED = "alias_set", "alias_deleted", "version_created"
KINDS = {
    ("model_version_alias", "created"): ALIAS_SET,
    ("model_version_alias", "deleted"): ALIAS_DELETED,
    ("model_version", "created"): VERSION_CREATED,
}


class Refused(ValueError):
    """A request sloguard does not act on: `status` (401 not MLflow's, 422 not a payload it reads) and why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def signature(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The `X-MLflow-Signature` MLflow sends for this body."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def verify(secret: str, headers: dict[str, str | None], body: bytes, now: datetime) -> str:
    """The delivery id of a request MLflow signed with `secret` within TOLERANCE of `now`; else Refused
    (401). The signatures are compared in constant time; a header may list several (space-separated, as
    Standard Webhooks allows while a secret is rotated)."""
    delivery_id = (headers.get(DELIVERY_HEADER) or "").strip()
    timestamp = (headers.get(TIMESTAMP_HEADER) or "").strip()
    presented = (headers.get(SIGNATURE_HEADER) or "").strip()
    if not presented:
        raise Refused(401, f"missing {SIGNATURE_HEADER}: the webhook must be created with the shared secret")
    if not delivery_id or not timestamp:
        missing = DELIVERY_HEADER if not delivery_id else TIMESTAMP_HEADER
        raise Refused(401, f"missing {missing}")
    if not _DELIVERY_ID.fullmatch(delivery_id):
        raise Refused(401, f"{DELIVERY_HEADER}: not a delivery id (1 to 100 letters, digits, . _ : -)")
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:  # not '²'
        raise Refused(401, f"{TIMESTAMP_HEADER}: not a Unix time in seconds")
    age = now.timestamp() - int(timestamp)
    if abs(age) > TOLERANCE:
        when = f"{age:.0f} s old" if age > 0 else f"{-age:.0f} s in the future"
        raise Refused(401, f"{TIMESTAMP_HEADER} is {when}; at most {TOLERANCE} s either way is accepted")
    expected = signature(secret, delivery_id, timestamp, body).encode("ascii")
    # Every candidate is compared, so the time taken does not say which one (or whether any) matched.
    matched = False
    for candidate in presented.split():
        matched |= hmac.compare_digest(candidate.encode("utf-8", "replace"), expected)
    if not matched:
        raise Refused(
            401, f"{SIGNATURE_HEADER} does not match the body: wrong secret, or the body was changed"
        )
    return delivery_id


@dataclass(frozen=True)
class RegistryEvent:
    """One change MLflow announced, in sloguard's words."""

    kind: str  # alias_set, alias_deleted, version_created
    registered_model: str
    at: datetime  # when MLflow sent it (the payload's timestamp)
    alias: str | None = None
    version: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)  # a new version's source, run id, tags, description


@dataclass(frozen=True)
class Ignored:
    """An event sloguard does not record (a tag set, a prompt, a registered model created)."""

    entity: str
    action: str


def _text(data: dict[str, Any], key: str, limit: int, *, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Refused(422, f"data.{key}: must be a string")
    text = str(value).strip()
    if required and not text:
        raise Refused(422, f"data.{key}: must not be empty")
    if len(text) > limit:
        raise Refused(422, f"data.{key}: at most {limit} characters")
    return text


def _time(value: Any, fallback: datetime) -> datetime:
    if value is None:
        return fallback
    if not isinstance(value, str):
        raise Refused(422, "timestamp: must be an ISO 8601 time string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Refused(422, f"timestamp: {value[:40]!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # MLflow sends UTC with an offset; a bare time is read as UTC
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise Refused(422, "timestamp: out of range once converted to UTC") from None


def parse(document: Any, sent_at: datetime) -> RegistryEvent | Ignored:
    """The event a webhook body announces (`sent_at`, the signed header's time, when it carries none);
    Refused (422) with the field named when the body is not MLflow's."""
    if not isinstance(document, dict):
        raise Refused(422, "body: must be a JSON object")
    entity, action, data = document.get("entity"), document.get("action"), document.get("data")
    if not isinstance(entity, str) or not entity or len(entity) > 100:
        raise Refused(422, "entity: must be MLflow's entity name, e.g. model_version_alias")
    if not isinstance(action, str) or not action or len(action) > 100:
        raise Refused(422, "action: must be MLflow's action name, e.g. created")
    kind = KINDS.get((entity, action))
    if kind is None:
        return Ignored(entity, action)
    if not isinstance(data, dict):
        raise Refused(422, "data: must be a JSON object")
    at = _time(document.get("timestamp"), sent_at)
    name = _text(data, "name", NAME_LIMIT)
    assert name is not None
    if kind in (ALIAS_SET, ALIAS_DELETED):
        alias = _text(data, "alias", ALIAS_LIMIT)
        version = _text(data, "version", VERSION_LIMIT) if kind == ALIAS_SET else None
        return RegistryEvent(kind, name, at, alias=alias, version=version)
    version = _text(data, "version", VERSION_LIMIT)
    detail: dict[str, Any] = {}
    for key in ("source", "run_id", "description"):
        value = _text(data, key, TEXT_LIMIT, required=False)
        if value is not None:
            detail[key] = value
    tags = data.get("tags")
    if tags is not None:
        if not isinstance(tags, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
        ):
            raise Refused(422, "data.tags: must be an object of strings")
        if len(tags) > 100 or any(len(k) > 250 or len(v) > TEXT_LIMIT for k, v in tags.items()):
            raise Refused(422, "data.tags: at most 100 tags, keys of 250 and values of 2000 characters")
        detail["tags"] = tags
    return RegistryEvent(kind, name, at, version=version, detail=detail)


def describe(
    kind: str, registered_model: str, alias: str | None, version: str | None, previous: str | None
) -> str:
    """The change in one line, for the timeline and the CLI."""
    if kind == ALIAS_SET:
        was = f"from {previous}" if previous is not None else "from a version sloguard had not seen"
        return f"MLflow: alias {alias} of {registered_model} moved to version {version} ({was})"
    if kind == ALIAS_DELETED:
        was = f" (it pointed at {previous})" if previous is not None else ""
        return f"MLflow: alias {alias} of {registered_model} was removed{was}"
    return f"MLflow: version {version} of {registered_model} was registered"


@dataclass(frozen=True)
class AliasMove:
    """One move of an alias in sloguard's history: to `version` (None: removed), from `previous`."""

    change_id: int
    alias: str
    version: str | None
    previous: str | None
    at: datetime
    actor: str | None = None


def suspect_move(moves: Sequence[AliasMove], impact_began: datetime, lookback: timedelta) -> AliasMove | None:
    """The alias's last move to a version within `lookback` before the impact began: the version it moved
    to is the suspect and the one it moved from the previous good one. A move after the impact began
    (a fix, most likely) is not a suspect."""
    candidates = [
        move
        for move in moves
        if move.version is not None and impact_began - lookback <= move.at <= impact_began
    ]
    return max(candidates, key=lambda move: (move.at, move.change_id), default=None)
