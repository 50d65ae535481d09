"""Buttons on the incident message: each calls the service function behind it with the number it carries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from app.chat import blocks
from app.chat.listeners.commands import acknowledge, resolve, write_review
from app.chat.replies import Reply, UsageError, answer, number, slack_user
from app.services import Services, ServicesRef

Button = Callable[[Services, int, str], Reply]


def clicked_value(body: dict[str, Any]) -> str:
    """The clicked button's value (the incident number, or `number:version[:environment]`)."""
    actions = body.get("actions")
    first = actions[0] if isinstance(actions, list) and actions else None
    value = first.get("value") if isinstance(first, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise UsageError("this click carries no value")
    return value.strip()


def register(app: AsyncApp, ref: ServicesRef) -> None:
    async def run(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, button: Button) -> None:
        await ack()

        def work() -> Reply:
            return button(ref.get(), number(clicked_value(body)), slack_user(body))

        await answer(respond, work, blocks.INCIDENT_USAGE, ref)

    @app.action("incident_ack")
    async def acknowledge_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await run(ack, body, respond, acknowledge)

    @app.action("incident_resolve")
    async def resolve_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await run(ack, body, respond, resolve)

    @app.action("incident_postmortem")
    async def postmortem_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await run(ack, body, respond, write_review)
