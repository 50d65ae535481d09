"""/rollback, /promote and the rollback buttons: propose privately, confirm with a second click."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from sqlmodel import Session, select

from app.chat import blocks
from app.chat.listeners.actions import clicked_value
from app.chat.replies import Reply, UsageError, answer, number, slack_user
from app.gates import service as gates
from app.identity.logic import Actor
from app.incidents import service as incidents
from app.ml.models import ModelVersionLink
from app.rollback import service as rollbacks
from app.rollback.models import RollbackAction, RollbackRequest
from app.services import Services, ServicesRef

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


def proposal_blocks(services: Services, action: RollbackAction) -> list[dict[str, Any]]:
    """What the confirmer sees: model, environment, from -> to, and what the evidence says of each."""
    # Versions come from the registry, metric labels or what was typed: escaped like every other text.
    lines = [
        f"*{action.kind.capitalize()} {blocks.escape(action.model)}* "
        f"in *{blocks.escape(action.environment)}*: "
        f"version {blocks.escape(action.from_version or '?')} → *{blocks.escape(action.to_version)}* "
        f"(target: {blocks.escape(action.target)})"
    ]
    if action.incident_id is not None:
        with Session(services.engine) as session:
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
                    f"• version {blocks.escape(link.version)}: {ratio:.2%} errors"
                    if ratio is not None
                    else f"• version {blocks.escape(link.version)}"
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
                            f"{blocks.escape(action.from_version or '?')} → "
                            f"{blocks.escape(action.to_version)}",
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


def propose(services: Services, request: RollbackRequest, user: str) -> Reply:
    """Propose as the Slack user who asked (a rollback without an incident joins the model's open one)."""
    action = gates.propose(services, request, Actor(user))
    content = proposal_blocks(services, action)
    _, env = rollbacks.environment_of(services.config, action.model, action.environment)
    # With the two-person rule the second person must see the Confirm button: post it in the channel.
    return Reply(content[0]["text"]["text"], env.two_person and not action.dry_run, content)


def confirm(services: Services, action_id: int, user: str) -> Reply:
    """Execute once: only the click that ran the change announces it and watches its burn."""
    confirmation = gates.confirm(services, action_id, Actor(user))
    action = confirmation.action
    if not confirmation.executed:
        return Reply(already(action))
    model, environment = blocks.escape(action.model), blocks.escape(action.environment)
    if action.state == "succeeded":
        return Reply(
            f"Your {action.kind}: {model} in {environment} now serves "
            f"{blocks.escape(action.to_version)} (was {blocks.escape(action.from_version or '?')}); "
            "watching the burn"
        )
    return Reply(f"{action.kind} of {model} {action.state}: {blocks.escape(action.output[-500:] or '')}")


def already(action: RollbackAction) -> str:
    """`Rollback 3 of fraud-detector in prod is already succeeded (by @ana at 2025-11-26 14:03:12 UTC)`."""
    who = [f"by {blocks.user(action.approver)}"] if action.approver else []
    when = [f"at {action.confirmed_at:%Y-%m-%d %H:%M:%S} UTC"] if action.confirmed_at else []
    detail = f" ({' '.join(who + when)})" if who or when else ""
    return (
        f"{action.kind.capitalize()} {action.id} of {blocks.escape(action.model)} in "
        f"{blocks.escape(action.environment)} is already {action.state}{detail}"
    )


def register(app: AsyncApp, ref: ServicesRef) -> None:
    @app.command("/rollback")
    async def rollback_command(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()

        def work() -> Reply:
            user = slack_user(command)
            model, environment, to, dry_run = parse_rollback(str(command.get("text", "")))
            request = RollbackRequest(
                model=model,
                environment=environment,
                to_version=to,
                dry_run=dry_run,
                reason=f"/rollback by {user}",
            )
            return propose(ref.get(), request, user)

        await answer(respond, work, ROLLBACK_USAGE, ref)

    @app.command("/promote")
    async def promote_command(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()

        def work() -> Reply:
            user = slack_user(command)
            model, environment, version = parse_promote(str(command.get("text", "")))
            request = RollbackRequest(
                model=model,
                environment=environment,
                to_version=version,
                kind="promote",
                reason=f"/promote by {user}",
            )
            return propose(ref.get(), request, user)

        await answer(respond, work, PROMOTE_USAGE, ref)

    @app.action("incident_rollback")
    async def rollback_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()

        def work() -> Reply:
            incident_id, version, *rest = [*clicked_value(body).split(":"), "", ""]
            with Session(ref.get().engine) as session:
                incident = incidents.get(session, number(incident_id))
            if not incident.model:
                return Reply("This incident names no model.")
            request = RollbackRequest(
                model=incident.model,
                environment=rest[0] or incident.environment or "prod",
                to_version=version or None,
                incident_id=incident.id,
                reason=f"rollback button on incident #{incident.id}",
            )
            return propose(ref.get(), request, slack_user(body))

        await answer(respond, work, None, ref)

    @app.action("rollback_confirm")
    async def confirm_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        await answer(
            respond,
            lambda: confirm(ref.get(), number(clicked_value(body), "rollback"), slack_user(body)),
            None,
            ref,
        )
