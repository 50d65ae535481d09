"""Buttons on the incident message: the same service calls as the commands."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from app.chat import blocks
from app.chat.listeners.commands import answer, run_incident_command


def register(app: AsyncApp, state: Any) -> None:
    async def run(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, verb: str) -> None:
        await ack()
        action = body["actions"][0]
        user = body["user"]["id"]
        await answer(
            respond,
            lambda: run_incident_command(state, f"{verb} {action['value']}", user),
            blocks.INCIDENT_USAGE,
        )

    @app.action("incident_ack")
    async def acknowledge(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await run(ack, body, respond, "ack")

    @app.action("incident_resolve")
    async def resolve(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await run(ack, body, respond, "resolve")

    @app.action("incident_postmortem")
    async def postmortem(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await run(ack, body, respond, "postmortem")
