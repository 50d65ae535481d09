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
        if SLACK_GROUP.fullmatch(entry):
            return f"<!subteam^{entry}>"
        if is_group(entry, groups) or not PERSON.fullmatch(entry):
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
) -> None:
    """Raise Forbidden naming who may, unless `actor` may do `kind` on this model and environment."""
    allowed = settings.rollback if kind == "rollback" else settings.promote
    if actor not in members(allowed, groups):
        raise Forbidden(f"you may not {kind} {model} in {environment}; ask {describe(allowed, groups)}")


def check_commander(
    kind: str,
    model: str,
    environment: str,
    settings: ModelEnvironment,
    governing: tuple[int, str | None] | None,
    people: Sequence[str],
) -> None:
    """With `require_commander`, a change of a model that has an open incident (`governing`: its id and
    commander) needs that commander among `people` (the actor; with `two_person`, at confirmation, the
    proposer and the confirmer). An incident nobody commands yet refuses: whoever acknowledges it leads."""
    if not settings.require_commander or governing is None:
        return
    incident_id, commander = governing
    if commander is None:
        raise Forbidden(
            f"in {environment} only the incident commander may {kind} {model}, and incident {incident_id} "
            "has none yet: acknowledge it (whoever acknowledges leads) or assign one"
        )
    if commander not in people:
        raise Forbidden(
            f"in {environment} only the incident commander <@{commander}> may {kind} {model} "
            f"(incident {incident_id})"
        )


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
