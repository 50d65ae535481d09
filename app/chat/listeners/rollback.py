"""/rollback, /promote and the rollback buttons: propose privately, confirm with a second click."""

from __future__ import annotations

import asyncio
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from sqlmodel import Session, col, select

from app.chat import blocks
from app.chat.listeners.commands import UsageError
from app.errors import ServiceError
from app.incidents import service as incidents
from app.incidents.models import CLOSED_STATUSES, Incident
from app.ml.models import ModelVersionLink
from app.rollback import service as rollbacks
from app.rollback.models import RollbackAction, RollbackRequest

ROLLBACK_USAGE = "Usage: /rollback MODEL [ENV] [to VERSION] [--dry-run]"
PROMOTE_USAGE = "Usage: /promote MODEL VERSION to ENV"


def parse_rollback(text: str) -> tuple[str, str, str | None, bool]:
    words = text.split()
    dry_run = "--dry-run" in words
    words = [w for w in words if w != "--dry-run"]
    if not words:
        raise UsageError("name the model")
    model, rest = words[0], words[1:]
    to = None
    if "to" in rest:
        index = rest.index("to")
        if index + 1 >= len(rest):
            raise UsageError("`to` needs a version")
        to = rest[index + 1]
        rest = rest[:index] + rest[index + 2 :]
    environment = rest[0] if rest else "prod"
    return model, environment, to, dry_run


def parse_promote(text: str) -> tuple[str, str, str]:
    words = text.split()
    if len(words) != 4 or words[2] != "to":
        raise UsageError("`/promote MODEL VERSION to ENV`")
    return words[0], words[3], words[1]


def open_incident_for(state: Any, model: str) -> Incident | None:
    with Session(state.engine) as session:
        return session.exec(
            select(Incident)
            .where(Incident.model == model, col(Incident.status).not_in(CLOSED_STATUSES))
            .order_by(col(Incident.id).desc())
        ).first()


def proposal_blocks(state: Any, action: RollbackAction) -> list[dict[str, Any]]:
    """What the confirmer sees: model, environment, from -> to, and what the evidence says of each."""
    lines = [
        f"*{action.kind.capitalize()} {blocks.escape(action.model)}* "
        f"in *{blocks.escape(action.environment)}*: "
        f"version {action.from_version or '?'} → *{action.to_version}* (target: {action.target})"
    ]
    if action.incident_id is not None:
        with Session(state.engine) as session:
            links = session.exec(
                select(ModelVersionLink).where(ModelVersionLink.incident_id == action.incident_id)
            ).all()
        for link in links:
            # Prometheus' rows carry the figures; the registry's row for the same version adds nothing here.
            if (
                link.role == "serving"
                and link.source == "prometheus"
                and link.version in (action.from_version, action.to_version)
            ):
                ratio = link.detail.get("error_ratio")
                served = (
                    f"{link.first_seen:%H:%M}–{link.last_seen:%H:%M}"
                    if link.first_seen and link.last_seen
                    else ""
                )
                lines.append(
                    f"• version {link.version}: {ratio:.2%} errors"
                    if ratio is not None
                    else f"• version {link.version}"
                )
                lines[-1] += f", served {served} UTC" if served else ""
    content: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}
    ]
    if action.dry_run:
        content.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "Dry run: nothing will change."}]}
        )
        return content
    content.append(
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "style": "danger",
                    "text": {"type": "plain_text", "text": f"Confirm {action.kind}"},
                    "action_id": "rollback_confirm",
                    "value": str(action.id),
                    "confirm": {
                        "title": {
                            "type": "plain_text",
                            "text": f"{action.kind.capitalize()} {action.model}?",
                        },
                        "text": {
                            "type": "mrkdwn",
                            "text": f"{blocks.escape(action.environment)}: "
                            f"{action.from_version} → {action.to_version}",
                        },
                        "confirm": {"type": "plain_text", "text": "Do it"},
                        "deny": {"type": "plain_text", "text": "Cancel"},
                        "style": "danger",
                    },
                }
            ],
        }
    )
    return content


def register(app: AsyncApp, state: Any) -> None:
    def registry() -> Any:
        return state.sources.get("mlflow")

    async def propose(respond: AsyncRespond, request: RollbackRequest) -> None:
        try:
            action = await asyncio.to_thread(
                rollbacks.propose, state.engine, state.file_config, registry(), request
            )
        except (ServiceError, UsageError) as exc:
            await respond(text=blocks.escape(str(exc)), response_type="ephemeral")
            return
        content = proposal_blocks(state, action)
        _, env = rollbacks.environment_of(state.file_config, action.model, action.environment)
        # With the two-person rule the second person must see the Confirm button: post it in the channel.
        visibility = "in_channel" if env.two_person and not action.dry_run else "ephemeral"
        await respond(text=content[0]["text"]["text"], blocks=content, response_type=visibility)

    @app.command("/rollback")
    async def rollback_command(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        try:
            model, environment, to, dry_run = parse_rollback(command.get("text", ""))
        except UsageError as exc:
            await respond(text=f"{exc}\n{ROLLBACK_USAGE}", response_type="ephemeral")
            return
        incident = await asyncio.to_thread(open_incident_for, state, model)
        request = RollbackRequest(
            model=model,
            environment=environment,
            to_version=to,
            dry_run=dry_run,
            actor=command["user_id"],
            incident_id=incident.id if incident else None,
            reason=f"/rollback by {command['user_id']}",
        )
        await propose(respond, request)

    @app.command("/promote")
    async def promote_command(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        try:
            model, environment, version = parse_promote(command.get("text", ""))
        except UsageError as exc:
            await respond(text=f"{exc}\n{PROMOTE_USAGE}", response_type="ephemeral")
            return
        request = RollbackRequest(
            model=model,
            environment=environment,
            to_version=version,
            kind="promote",
            actor=command["user_id"],
            reason=f"/promote by {command['user_id']}",
        )
        await propose(respond, request)

    @app.action("incident_rollback")
    async def rollback_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        incident_id, version, *rest = str(body["actions"][0]["value"]).split(":")
        with Session(state.engine) as session:
            incident = incidents.get(session, int(incident_id))
        if not incident.model:
            await respond(text="This incident names no model.", response_type="ephemeral")
            return
        request = RollbackRequest(
            model=incident.model,
            environment=rest[0] if rest else incident.environment or "prod",
            to_version=version,
            incident_id=incident.id,
            actor=body["user"]["id"],
            reason=f"rollback button on incident #{incident.id}",
        )
        await propose(respond, request)

    @app.action("rollback_confirm")
    async def confirm_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        action_id, user = int(body["actions"][0]["value"]), body["user"]["id"]

        def run() -> RollbackAction:
            action = rollbacks.confirm(
                state.engine, state.file_config, registry(), state.events, action_id, user
            )
            _, env = rollbacks.environment_of(state.file_config, action.model, action.environment)
            rollbacks.schedule_verify(state, action, env)
            return action

        try:
            action = await asyncio.to_thread(run)
        except ServiceError as exc:
            await respond(text=blocks.escape(str(exc)), response_type="ephemeral")
            return
        if action.state == "succeeded":
            text = (
                f"<@{user}> {action.kind}: {action.model} in {action.environment} now serves "
                f"{action.to_version} (was {action.from_version}); watching the burn"
            )
        else:
            text = (
                f"{action.kind} of {action.model} {action.state}: {blocks.escape(action.output[-500:] or '')}"
            )
        await respond(text=text, response_type="in_channel" if action.state == "succeeded" else "ephemeral")
