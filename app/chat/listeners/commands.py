"""/incident and /slo: parse, call one service function, answer. `ack()` comes first, always."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from sqlmodel import Session

from app.chat import blocks
from app.chat.replies import Reply, UsageError, answer, number, slack_user
from app.incidents import service as incidents
from app.incidents.models import IncidentCreate, IncidentStatus, IncidentUpdate, Severity
from app.slo import service as slos

USER = re.compile(rf"<@({blocks.USER_ID.pattern})(?:\|[^>]*)?>")  # how Slack escapes a typed @name


def _id(value: str | None) -> int:
    return number(value)  # `number` is also a local name below


def run_incident_command(state: Any, text: str, user: str) -> tuple[str, bool]:
    """The reply to `/incident TEXT` and whether it goes to the channel (mutations) or privately."""
    words = text.split()
    verb = words[0].lower() if words else "help"
    args = words[1:]
    engine, events, now = state.engine, state.events, datetime.now(UTC)
    if verb == "help":
        return blocks.INCIDENT_USAGE, False
    if verb == "list":
        scope = args[0].lower() if args and args[0].lower() in ("open", "all") else "open"
        service = next((a for a in args if a.lower() not in ("open", "all")), None)
        with Session(engine) as session:
            rows = incidents.list_incidents(session, service=service, limit=50)
        shown = [r for r in rows if scope == "all" or r.status not in ("resolved", "cancelled")]
        return (
            "\n".join(blocks.incident_line(incidents.as_dict(r)) for r in shown) or "No incidents."
        ), False
    if verb == "show":
        with Session(engine) as session:
            incident = incidents.get(session, _id(args[0] if args else None))
            events_text = [
                f"{e.at:%H:%M:%S} {e.kind}: {e.text}" for e in incidents.timeline(session, incident.id or 0)
            ]
        lines = [
            blocks.incident_line(incidents.as_dict(incident)),
            *[blocks.escape(t) for t in events_text[-10:]],
        ]
        return blocks.cut("\n".join(lines), blocks.MESSAGE_LIMIT), False
    if verb == "declare":
        if not args:
            raise UsageError("`/incident declare TITLE [SEV1-4]`")
        severity = Severity.SEV3
        if args[-1].upper() in Severity.__members__:
            severity = Severity(args.pop().upper())
        title = " ".join(args)
        incident = incidents.declare(
            engine,
            events,
            IncidentCreate(title=title[:300], severity=severity, actor=user, commander=user),
            now,
        )
        return (
            f"{blocks.user(user)} declared incident #{incident.id} ({severity.value}): "
            f"{blocks.escape(title)}",
            True,
        )
    if verb in ("ack", "resolve", "status"):
        number = _id(args[0] if args else None)
        if verb == "status":
            if len(args) < 2 or args[1].lower() not in IncidentStatus.__members__:
                raise UsageError("`/incident status ID triggered|acknowledged|mitigated|resolved|cancelled`")
            target = IncidentStatus(args[1].lower())
        else:
            target = IncidentStatus.acknowledged if verb == "ack" else IncidentStatus.resolved
        with Session(engine) as session:
            if incidents.get(session, number).status == target:
                return f"Incident #{number} is already {target.value}.", False
        incidents.update(engine, events, number, IncidentUpdate(status=target, actor=user), now)
        return f"{blocks.user(user)} moved incident #{number} to {target.value}", True
    if verb == "sev":
        number = _id(args[0] if args else None)
        if len(args) < 2 or args[1].upper() not in Severity.__members__:
            raise UsageError("`/incident sev ID SEV1|SEV2|SEV3|SEV4`")
        incidents.update(
            engine, events, number, IncidentUpdate(severity=Severity(args[1].upper()), actor=user), now
        )
        return f"{blocks.user(user)} set incident #{number} to {args[1].upper()}", True
    if verb == "assign":
        number = _id(args[0] if args else None)
        match = USER.fullmatch(args[1]) if len(args) > 1 else None
        if match is None:
            raise UsageError("`/incident assign ID @user`")
        incidents.update(engine, events, number, IncidentUpdate(commander=match.group(1), actor=user), now)
        return f"{blocks.user(user)} made {blocks.user(match.group(1))} commander of incident #{number}", True
    if verb == "note":
        number = _id(args[0] if args else None)
        if len(args) < 2:
            raise UsageError("`/incident note ID TEXT`")
        incidents.add_note(engine, number, " ".join(args[1:]), user, now)
        return (
            f"{blocks.user(user)} noted on incident #{number}: "
            f"{blocks.escape(blocks.cut(' '.join(args[1:]), 2000))}",
            True,
        )
    if verb == "postmortem":
        from app.postmortems import service as postmortems

        number = _id(args[0] if args else None)
        draft = postmortems.write(engine, state, number, now)
        budget = draft.context["budget"]
        spent = f", {blocks.escape(budget['consumed_percent'])} of the error budget" if budget else ""
        figures = draft.context["figures"]
        return (
            f"Review draft for incident #{number} written to `{blocks.escape(draft.path)}` "
            f"(duration {blocks.escape(figures['duration'])}, "
            f"MTTA {blocks.escape(figures['time_to_acknowledge'])}{spent})",
            False,
        )
    raise UsageError(f"unknown verb `{blocks.escape(verb)}`")


def run_slo_command(state: Any, text: str) -> str:
    words = text.split()
    verb = words[0].lower() if words else "list"
    with Session(state.engine) as session:
        items = slos.latest_status(session, state.slo_engine.slos)
    if verb == "list":
        return "\n".join(blocks.slo_line(item) for item in items) or "No SLOs."
    if verb == "status":
        if len(words) < 2:
            raise UsageError("`/slo status SLO`")
        with Session(state.engine) as session:
            (item,) = slos.latest_status(session, state.slo_engine.slos, words[1])
        return blocks.slo_line(item)
    if verb == "budget":
        service = words[1] if len(words) > 1 else None
        chosen = [i for i in items if service is None or i["service"] == service]
        return (
            "\n".join(blocks.slo_line(item) for item in chosen)
            or f"No SLOs for {blocks.escape(service or '')}."
        )
    raise UsageError(f"unknown verb `{blocks.escape(verb)}`")


def register(app: AsyncApp, state: Any) -> None:
    @app.command("/incident")
    async def incident_command(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()

        def work() -> Reply:
            return Reply(*run_incident_command(state, str(command.get("text", "")), slack_user(command)))

        await answer(respond, work, blocks.INCIDENT_USAGE, state)

    @app.command("/slo")
    async def slo_command(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        await answer(
            respond,
            lambda: Reply(run_slo_command(state, str(command.get("text", "")))),
            blocks.SLO_USAGE,
            state,
        )
