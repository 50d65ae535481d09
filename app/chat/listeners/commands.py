"""/incident and /slo: parse, call one service function, answer. `ack()` comes first, always.

Each verb is a row of a table (`INCIDENT_VERBS`): the function that parses its words and calls the
service. Buttons call the same service functions with the values they carry (`acknowledge`, `resolve`,
`write_review`), not a command text parsed again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from sqlmodel import Session

from app.chat import blocks
from app.chat.replies import Reply, UsageError, answer, number, slack_user
from app.identity.logic import Actor
from app.incidents import service as incidents
from app.incidents.models import IncidentCreate, IncidentStatus, IncidentUpdate, Severity
from app.services import Services, ServicesRef
from app.slo import service as slos

USER = re.compile(rf"<@({blocks.USER_ID.pattern})(?:\|[^>]*)?>")  # how Slack escapes a typed @name
LIST_LIMIT = 50
Verb = Callable[[Services, list[str], str], Reply]


def _first_number(args: list[str]) -> int:
    return number(args[0] if args else None)


# ---------------------------------------------------------------- what the verbs and buttons do


def move(services: Services, incident_id: int, target: IncidentStatus, user: str) -> Reply:
    with Session(services.engine) as session:
        if incidents.get(session, incident_id).status == target:
            return Reply(f"Incident #{incident_id} is already {target.value}.")
    update = IncidentUpdate(status=target)
    incidents.update(services.engine, services.events, incident_id, update, datetime.now(UTC), Actor(user))
    return Reply(f"You moved incident #{incident_id} to {target.value}.")


def acknowledge(services: Services, incident_id: int, user: str) -> Reply:
    return move(services, incident_id, IncidentStatus.acknowledged, user)


def resolve(services: Services, incident_id: int, user: str) -> Reply:
    return move(services, incident_id, IncidentStatus.resolved, user)


def write_review(services: Services, incident_id: int, user: str) -> Reply:
    from app.postmortems import service as postmortems

    draft = postmortems.write(services, incident_id, datetime.now(UTC))
    budget = draft.context["budget"]
    spent = f", {blocks.escape(budget['consumed_percent'])} of the error budget" if budget else ""
    figures = draft.context["figures"]
    return Reply(
        f"Review draft for incident #{incident_id} written to `{blocks.escape(draft.path)}` "
        f"(duration {blocks.escape(figures['duration'])}, "
        f"MTTA {blocks.escape(figures['time_to_acknowledge'])}{spent})"
    )


# ---------------------------------------------------------------- /incident verbs


def help_verb(services: Services, args: list[str], user: str) -> Reply:
    return Reply(blocks.INCIDENT_USAGE)


def list_verb(services: Services, args: list[str], user: str) -> Reply:
    scopes = ("open", "all")
    scope = args[0].lower() if args and args[0].lower() in scopes else "open"
    service = next((a for a in args if a.lower() not in scopes), None)
    with Session(services.engine) as session:
        rows = incidents.list_incidents(session, service=service, open_only=scope == "open", limit=LIST_LIMIT)
    lines = [blocks.incident_line(incidents.as_dict(row)) for row in rows]
    return Reply("\n".join(lines) or "No incidents.")


def show_verb(services: Services, args: list[str], user: str) -> Reply:
    with Session(services.engine) as session:
        incident = incidents.get(session, _first_number(args))
        events_text = [
            f"{e.at:%H:%M:%S} {e.kind}: {e.text}" for e in incidents.timeline(session, incident.id or 0)
        ]
    lines = [
        blocks.incident_line(incidents.as_dict(incident)),
        *[blocks.escape(t) for t in events_text[-10:]],
    ]
    return Reply(blocks.cut("\n".join(lines), blocks.MESSAGE_LIMIT))


def declare_verb(services: Services, args: list[str], user: str) -> Reply:
    if not args:
        raise UsageError("`/incident declare TITLE [SEV1-4]`")
    severity = Severity.SEV3
    if args[-1].upper() in Severity.__members__:
        severity = Severity(args.pop().upper())
    title = " ".join(args)
    incident = incidents.declare(
        services.engine,
        services.events,
        IncidentCreate(title=title[:300], severity=severity, commander=user),
        datetime.now(UTC),
        Actor(user),
    )
    return Reply(f"You declared incident #{incident.id} ({severity.value}): {blocks.escape(title)}")


def ack_verb(services: Services, args: list[str], user: str) -> Reply:
    return acknowledge(services, _first_number(args), user)


def resolve_verb(services: Services, args: list[str], user: str) -> Reply:
    return resolve(services, _first_number(args), user)


def status_verb(services: Services, args: list[str], user: str) -> Reply:
    incident_id = _first_number(args)
    if len(args) < 2 or args[1].lower() not in IncidentStatus.__members__:
        raise UsageError("`/incident status ID triggered|acknowledged|mitigated|resolved|cancelled`")
    return move(services, incident_id, IncidentStatus(args[1].lower()), user)


def sev_verb(services: Services, args: list[str], user: str) -> Reply:
    incident_id = _first_number(args)
    if len(args) < 2 or args[1].upper() not in Severity.__members__:
        raise UsageError("`/incident sev ID SEV1|SEV2|SEV3|SEV4`")
    severity = Severity(args[1].upper())
    update = IncidentUpdate(severity=severity)
    incidents.update(services.engine, services.events, incident_id, update, datetime.now(UTC), Actor(user))
    return Reply(f"You set incident #{incident_id} to {severity.value}.")


def assign_verb(services: Services, args: list[str], user: str) -> Reply:
    incident_id = _first_number(args)
    match = USER.fullmatch(args[1]) if len(args) > 1 else None
    if match is None:
        raise UsageError("`/incident assign ID @user`")
    update = IncidentUpdate(commander=match.group(1))
    incidents.update(services.engine, services.events, incident_id, update, datetime.now(UTC), Actor(user))
    return Reply(f"You made {blocks.user(match.group(1))} commander of incident #{incident_id}.")


def note_verb(services: Services, args: list[str], user: str) -> Reply:
    incident_id = _first_number(args)
    if len(args) < 2:
        raise UsageError("`/incident note ID TEXT`")
    text = " ".join(args[1:])
    incidents.add_note(
        services.engine, incident_id, text, Actor(user), datetime.now(UTC), dispatcher=services.events
    )
    return Reply(f"You noted on incident #{incident_id}: {blocks.escape(blocks.cut(text, 2000))}")


def postmortem_verb(services: Services, args: list[str], user: str) -> Reply:
    return write_review(services, _first_number(args), user)


INCIDENT_VERBS: dict[str, Verb] = {
    "help": help_verb,
    "list": list_verb,
    "show": show_verb,
    "declare": declare_verb,
    "ack": ack_verb,
    "resolve": resolve_verb,
    "status": status_verb,
    "sev": sev_verb,
    "assign": assign_verb,
    "note": note_verb,
    "postmortem": postmortem_verb,
}


def run_incident_command(services: Services, text: str, user: str) -> Reply:
    """The reply to `/incident TEXT` (mutations in the channel, the rest privately)."""
    words = text.split()
    verb = words[0].lower() if words else "help"
    found = INCIDENT_VERBS.get(verb)
    if found is None:
        raise UsageError(f"unknown verb `{blocks.escape(verb)}`")
    return found(services, words[1:], user)


# ---------------------------------------------------------------- /slo


def own(services: Services, item: dict[str, Any]) -> dict[str, Any]:
    """The SLO's status with its own windows named (by tier position) for the line that shows it."""
    spec = services.slo_engine.by_id.get(item["id"])
    return item | {"own_windows": [w.name for w in spec.windows_by_tier] if spec else list(item["windows"])}


def run_slo_command(services: Services, text: str) -> str:
    words = text.split()
    verb = words[0].lower() if words else "list"
    with Session(services.engine) as session:
        items = [own(services, item) for item in slos.latest_status(session, services.slo_engine.slos)]
    if verb == "list":
        return "\n".join(blocks.slo_line(item) for item in items) or "No SLOs."
    if verb == "status":
        if len(words) < 2:
            raise UsageError("`/slo status SLO`")
        with Session(services.engine) as session:
            (item,) = slos.latest_status(session, services.slo_engine.slos, words[1])
        return blocks.slo_line(own(services, item))
    if verb == "budget":
        service = words[1] if len(words) > 1 else None
        chosen = [i for i in items if service is None or i["service"] == service]
        return (
            "\n".join(blocks.slo_line(item) for item in chosen)
            or f"No SLOs for {blocks.escape(service or '')}."
        )
    raise UsageError(f"unknown verb `{blocks.escape(verb)}`")


def register(app: AsyncApp, ref: ServicesRef) -> None:
    @app.command("/incident")
    async def incident_command(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()

        def work() -> Reply:
            return run_incident_command(ref.get(), str(command.get("text", "")), slack_user(command))

        await answer(respond, work, blocks.INCIDENT_USAGE, ref)

    @app.command("/slo")
    async def slo_command(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        await answer(
            respond,
            lambda: Reply(run_slo_command(ref.get(), str(command.get("text", "")))),
            blocks.SLO_USAGE,
            ref,
        )
