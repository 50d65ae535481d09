"""Events API: a :pushpin: on a message in an incident's thread or channel adds it to the timeline."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import Session

from app import db
from app.incidents import service as incidents
from app.services import Services, ServicesRef


def capture(
    services: Services, channel: str, message: dict[str, Any], thread_ts: str | None, user: str
) -> int | None:
    engine = services.engine
    with Session(engine) as session:
        incident = incidents.find_by_slack_message(session, channel, thread_ts or message.get("ts", ""))
        if incident is None or incident.id is None:
            return None
        marker = f"{channel}:{message.get('ts')}"
        if incidents.has_timeline_marker(session, incident.id, "slack_pin", marker):
            return incident.id  # Slack retried the event: already captured
    at = datetime.fromtimestamp(float(message.get("ts", "0")), UTC)

    def command(session: Session, events: db.Events) -> None:
        # Checked again on the locked row: a retry delivered to another replica at the same moment
        # waits here and then finds the note.
        found = incidents.lock(session, incident.id)  # type: ignore[arg-type]
        if incidents.has_timeline_marker(session, found.id or 0, "slack_pin", marker):
            return
        incidents.note(
            session,
            found,
            "slack_pin",
            str(message.get("text", "")),
            actor=message.get("user") or user,
            at=at,
            data={"marker": marker, "pinned_by": user},
        )

    db.unit_of_work(engine, None, command)
    return incident.id


def register(app: AsyncApp, ref: ServicesRef) -> None:
    @app.event("reaction_added")
    async def pinned(event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("reaction") != "pushpin" or event.get("item", {}).get("type") != "message":
            return
        channel, ts = event["item"]["channel"], event["item"]["ts"]
        history = await client.conversations_replies(channel=channel, ts=ts, limit=1)
        messages = history.get("messages") or []
        if not messages:
            return
        message = messages[0]
        await asyncio.to_thread(
            capture, ref.get(), channel, message, message.get("thread_ts"), event.get("user", "")
        )
