"""Who may change what, and the idempotency key of a change. Pure."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from app.config import ModelEnvironment
from app.errors import Forbidden
from app.identity.logic import PERSON, SLACK_GROUP, is_group


def members(allowed: Sequence[str], groups: Mapping[str, Sequence[str]]) -> set[str]:
    """The identities named directly (Slack user IDs, the automation's name) or through a user group
    (listed in sloguard.yaml `groups:`, or an unlisted Slack group ID S…, which has no members)."""
    users = set()
    for entry in allowed:
        users |= set(groups.get(entry, [])) if is_group(entry, groups) else {entry}
    return users


def describe(allowed: Sequence[str], groups: Mapping[str, Sequence[str]] | None = None) -> str:
    def one(entry: str) -> str:
        if SLACK_GROUP.match(entry):
            return f"<!subteam^{entry}>"
        if is_group(entry, groups) or not PERSON.match(entry):
            return entry  # a group of sloguard.yaml's own, or the automation identity
        return f"<@{entry}>"

    return ", ".join(one(a) for a in allowed) or "nobody"


def check_permission(
    kind: str,
    actor: str,
    model: str,
    environment: str,
    settings: ModelEnvironment,
    groups: Mapping[str, Sequence[str]],
    commander: str | None = None,
) -> None:
    """Raise Forbidden naming who may, unless `actor` may do `kind` on this model and environment."""
    allowed = settings.rollback if kind == "rollback" else settings.promote
    if actor not in members(allowed, groups):
        raise Forbidden(f"you may not {kind} {model} in {environment}; ask {describe(allowed, groups)}")
    if kind == "rollback" and settings.require_commander and commander is not None and actor != commander:
        raise Forbidden(f"in {environment} only the incident commander <@{commander}> may roll back {model}")


def idempotency_key(
    kind: str,
    model: str,
    environment: str,
    from_version: str | None,
    to_version: str,
    incident_id: int | None,
) -> str:
    """Same change against the same serving version = same action (a double click proposes once)."""
    text = f"{kind}|{model}|{environment}|{from_version}|{to_version}|{incident_id}"
    return f"{kind}:{hashlib.sha256(text.encode()).hexdigest()[:32]}"
