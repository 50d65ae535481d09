"""Buttons on the incident message: the same service calls as the commands."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from app.chat import blocks
from app.chat.listeners.commands import run_incident_command
from app.chat.replies import Reply, UsageError, answer, slack_user


def clicked_value(body: dict[str, Any]) -> str:
    """The clicked button's value (the incident number, or `number:version[:environment]`)."""
    actions = body.get("actions")
    first = actions[0] if isinstance(actions, list) and actions else None
    value = first.get("value") if isinstance(first, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise UsageError("this click carries no value")
    return value.strip()


def register(app: AsyncApp, state: Any) -> None:
    async def run(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, verb: str) -> None:
        await ack()

        def work() -> Reply:
            # The value becomes one word of the command: a value with spaces cannot smuggle in arguments.
            value = clicked_value(body).split()[0]
            return Reply(*run_incident_command(state, f"{verb} {value}", slack_user(body)))

        await answer(respond, work, blocks.INCIDENT_USAGE, state)

    @app.action("incident_ack")
    async def acknowledge(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await run(ack, body, respond, "ack")

    @app.action("incident_resolve")
    async def resolve(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await run(ack, body, respond, "resolve")

    @app.action("incident_postmortem")
    async def postmortem(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await run(ack, body, respond, "postmortem")
